import { useEffect, useState } from 'react';
import { useQuery, useSubscription } from 'urql';
import { FilterFields, filterOrNull } from '../components/FilterFields';
import { RankTable } from '../components/RankTable';
import { Empty, Loading, ProblemView } from '../components/States';
import { type Filter, operations, type TopAdsAnswer, type TopList } from '../operations';

const WINDOWS = [1, 5, 15, 60];
const LIMIT = 100;

// The top ads of the last 1/5/15/60 minutes: the current list at once (topAds), then
// every list the minute closer publishes (TopAdsLive): a new one each minute, and a new
// revision of a minute when late clicks change it.
export function LiveTopAds() {
  const [minutes, setMinutes] = useState(5);
  const [filter, setFilter] = useState<Filter>({});
  const variables = { lastMinutes: minutes, limit: LIMIT, filter: filterOrNull(filter) };
  const [current, refetch] = useQuery<{ topAds: TopAdsAnswer }>({
    query: operations.TopAds,
    variables,
  });
  const [lists, setLists] = useState<TopList[]>([]);
  useEffect(() => setLists([]), [minutes, filter]);
  const [live, resubscribe] = useSubscription<{ topAds: TopList }, TopList[]>(
    {
      query: operations.TopAdsLive,
      variables: { windowMinutes: minutes, limit: LIMIT, filter: filterOrNull(filter) },
    },
    (received = [], response) => [response.topAds, ...received].slice(0, 20),
  );
  useEffect(() => {
    if (live.data) {
      setLists(live.data);
      refetch({ requestPolicy: 'network-only' }); // the watermark moved
    }
  }, [live.data, refetch]);

  // A page that fell too far behind (a tab asleep) has its subscription ended by the API
  // (SUBSCRIPTION_TOO_SLOW, docs/api.md): subscribe again, and take the current list.
  const tooSlow = live.error?.graphQLErrors[0]?.extensions?.code === 'SUBSCRIPTION_TOO_SLOW';
  useEffect(() => {
    if (tooSlow) {
      resubscribe();
      refetch({ requestPolicy: 'network-only' });
    }
  }, [tooSlow, resubscribe, refetch]);

  const newest = lists[0];
  const previous = newest ? lists.find((l) => l.windowEnd !== newest.windowEnd || l.revision !== newest.revision) : undefined;
  const window = current.data?.topAds.window;
  return (
    <section>
      <h2>Live top ads</h2>
      <div className="controls">
        {WINDOWS.map((m) => (
          <button key={m} data-testid={`window-${m}`} className={m === minutes ? 'chosen' : ''}
                  onClick={() => setMinutes(m)}>
            {m} min
          </button>
        ))}
        <FilterFields filter={filter} onChange={setFilter} />
      </div>
      {current.error && <ProblemView error={current.error} />}
      {live.error && !tooSlow && <ProblemView error={live.error} />}
      {window && (
        <p className="window" data-testid="window">
          window {window.from} – {window.to}:{' '}
          <span data-testid="complete">{window.complete ? 'complete' : 'still counting'}</span>, watermark{' '}
          <span data-testid="watermark">{window.watermark ?? 'none yet'}</span>
        </p>
      )}
      {newest ? (
        <>
          <p className="published" data-testid="published">
            published list of {newest.windowStart} –{' '}
            <span data-testid="window-end">{newest.windowEnd}</span>, revision{' '}
            <span data-testid="revision">{newest.revision}</span>
            {newest.revision > 1 && <strong className="revised" data-testid="revised"> revised by late clicks</strong>}
            {' '}· <span data-testid="lists-received">{lists.length}</span> received
          </p>
          <RankTable ads={newest.ads} previous={previous?.ads ?? []} />
          <h3>Received</h3>
          <ol className="received" data-testid="received">
            {lists.map((list) => (
              <li key={`${list.windowEnd}:${list.revision}`} data-window-end={list.windowEnd}
                  data-revision={list.revision}>
                {list.windowStart} – {list.windowEnd}, revision {list.revision}
                {list.revision > 1 && ' (revised)'}
              </li>
            ))}
          </ol>
        </>
      ) : current.fetching ? (
        <Loading />
      ) : current.data && current.data.topAds.ads.length === 0 ? (
        <Empty>No clicks in this window.</Empty>
      ) : (
        current.data && <RankTable ads={current.data.topAds.ads} />
      )}
    </section>
  );
}
