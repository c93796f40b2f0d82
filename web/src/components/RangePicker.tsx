import { useState } from 'react';
import { fromInput, toInput } from '../time';

export interface Range {
  from: string; // datetime-local values, UTC minutes
  to: string;
}

// The last hour up to the last complete minute, as a range picker starts.
export function useLastHour(): [Range, (range: Range) => void] {
  const now = Date.now();
  return useState<Range>({ from: toInput(now - 3600_000), to: toInput(now - 60_000) });
}

// A range's ends as the API takes them.
export const rangeVariables = (range: Range) => ({ from: fromInput(range.from), to: fromInput(range.to) });

// From and to, in UTC minutes (the API counts whole minutes).
export function RangePicker({ range, onChange }: { range: Range; onChange: (range: Range) => void }) {
  return (
    <>
      <label>
        from (UTC){' '}
        <input type="datetime-local" step={60} data-testid="range-from" value={range.from}
               onChange={(e) => onChange({ ...range, from: e.target.value })} />
      </label>
      <label>
        to{' '}
        <input type="datetime-local" step={60} data-testid="range-to" value={range.to}
               onChange={(e) => onChange({ ...range, to: e.target.value })} />
      </label>
    </>
  );
}
