import { useState } from 'react';
import { useMutation, useQuery } from 'urql';
import { Loading, ProblemView } from '../components/States';
import { operations } from '../operations';

interface Policy {
  relation: string;
  hot: string | null;
  cold: string | null;
  updatedAt: string;
  updatedBy: string;
}

// Every relation's retention (admins only), edited through setRetention; the API's
// refusals are shown as it words them.
export function Retention() {
  const [{ data, error, fetching }, refetch] = useQuery<{ retentionPolicies: Policy[] }>({
    query: operations.RetentionPolicies,
  });
  return (
    <section>
      <h2>Retention</h2>
      {error && <ProblemView error={error} />}
      {fetching && !data && <Loading />}
      {data && (
        <table data-testid="retention">
          <thead>
            <tr><th>relation</th><th>hot</th><th>cold</th><th>changed</th><th /></tr>
          </thead>
          <tbody>
            {data.retentionPolicies.map((p) => (
              <PolicyRow key={p.relation} policy={p} onSaved={() => refetch({ requestPolicy: 'network-only' })} />
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function PolicyRow({ policy, onSaved }: { policy: Policy; onSaved: () => void }) {
  const [hot, setHot] = useState(policy.hot ?? '');
  const [cold, setCold] = useState(policy.cold ?? '');
  const [result, save] = useMutation(operations.SetRetention);
  return (
    <tr data-testid={`policy-${policy.relation}`}>
      <td>{policy.relation}</td>
      <td><input data-testid="hot" value={hot} placeholder="forever" onChange={(e) => setHot(e.target.value)} /></td>
      <td><input data-testid="cold" value={cold} placeholder="forever" onChange={(e) => setCold(e.target.value)} /></td>
      <td>{policy.updatedAt} by {policy.updatedBy}</td>
      <td>
        <button
          data-testid="save"
          disabled={result.fetching}
          onClick={async () => {
            const saved = await save({ relation: policy.relation, hot: hot || null, cold: cold || null });
            if (!saved.error) onSaved();
          }}
        >
          save
        </button>
        {result.error && <ProblemView error={result.error} />}
      </td>
    </tr>
  );
}
