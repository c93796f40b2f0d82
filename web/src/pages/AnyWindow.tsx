import { useState } from 'react';
import { useQuery } from 'urql';
import { FilterFields, filterOrNull } from '../components/FilterFields';
import { RankTable } from '../components/RankTable';
import { Empty, Loading, ProblemView } from '../components/States';
import { type Filter, operations, type TopAdsAnswer } from '../operations';
import { fromInput, toInput } from '../time';

// The top ads of any minute range, filtered by any dimension, and what answered it.
export function AnyWindow() {
  const now = Date.now();
  const [range, setRange] = useState({ from: toInput(now - 3600_000), to: toInput(now - 60_000) });
  const [filter, setFilter] = useState<Filter>({});
  const [limit, setLimit] = useState(20);
  const [{ data, error, fetching }] = useQuery<{ topAds: TopAdsAnswer }>({
    query: operations.TopAdsInRange,
    variables: { from: fromInput(range.from), to: fromInput(range.to), limit, filter: filterOrNull(filter) },
  });
  return (
    <section>
      <h2>Top ads of any window</h2>
      <div className="controls">
        <label>
          from (UTC){' '}
          <input type="datetime-local" step={60} data-testid="range-from" value={range.from}
                 onChange={(e) => setRange({ ...range, from: e.target.value })} />
        </label>
        <label>
          to{' '}
          <input type="datetime-local" step={60} data-testid="range-to" value={range.to}
                 onChange={(e) => setRange({ ...range, to: e.target.value })} />
        </label>
        <label>
          top{' '}
          <input type="number" min={1} max={1000} value={limit} data-testid="limit"
                 onChange={(e) => setLimit(Math.max(1, Number(e.target.value) || 1))} />
        </label>
        <FilterFields filter={filter} onChange={setFilter} />
      </div>
      {error && <ProblemView error={error} />}
      {fetching && <Loading />}
      {data && (
        <>
          <p className="window" data-testid="window">
            {data.topAds.window.minutes} minutes, {data.topAds.window.complete ? 'complete' : 'still counting'},
            answered from <span data-testid="source">{data.topAds.source}</span>
          </p>
          {data.topAds.ads.length ? <RankTable ads={data.topAds.ads} /> : <Empty>No clicks in this window.</Empty>}
        </>
      )}
    </section>
  );
}
