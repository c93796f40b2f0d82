import type { CombinedError } from 'urql';
import { problemOf } from '../api';

export function Loading() {
  return <p className="state" data-testid="loading">Loading…</p>;
}

export function Empty({ children }: { children: React.ReactNode }) {
  return <p className="state" data-testid="empty">{children}</p>;
}

// Each failure as its reader needs it: sign in, ask for the admin role, change the
// request (with the API's code), or try later.
export function ProblemView({ error }: { error: CombinedError }) {
  const problem = problemOf(error);
  switch (problem.kind) {
    case 'unauthenticated':
      return (
        <p className="state problem" data-testid="unauthenticated">
          Not signed in: paste a token above ({problem.message}).
        </p>
      );
    case 'forbidden':
      return (
        <p className="state problem" data-testid="forbidden">
          Your token may not do this: it needs the admin role.
        </p>
      );
    case 'refused':
      return (
        <p className="state problem" data-testid="refused">
          Refused ({problem.code}): {problem.message}
        </p>
      );
    default:
      return (
        <p className="state problem" data-testid="server-error">
          The server failed: {problem.message}. Try again later.
        </p>
      );
  }
}
