import { useState } from 'react';
import { useQuery } from 'urql';
import { FilterFields, filterOrNull } from '../components/FilterFields';
import { RangePicker, rangeVariables, useLastHour } from '../components/RangePicker';
import { RankTable } from '../components/RankTable';
import { Empty, Loading, ProblemView } from '../components/States';
import { type Filter, operations, type TopAdsAnswer } from '../operations';

// The top ads of any minute range, filtered by any dimension, and what answered it.
export function AnyWindow() {
  const [range, setRange] = useLastHour();
  const [filter, setFilter] = useState<Filter>({});
  const [limit, setLimit] = useState(20);
  const [{ data, error, fetching }] = useQuery<{ topAds: TopAdsAnswer }>({
    query: operations.TopAdsInRange,
    variables: { ...rangeVariables(range), limit, filter: filterOrNull(filter) },
  });
  return (
    <section>
      <h2>Top ads of any window</h2>
      <div className="controls">
        <RangePicker range={range} onChange={setRange} />
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
