import { useEffect } from 'react';
import { useQuery } from 'urql';
import { Empty, Loading, ProblemView } from '../components/States';
import { operations } from '../operations';

interface Partition {
  partition: number;
  nextOffset: number | null;
  newestEventTime: string | null;
  watermark: string | null;
}

// Per partition of the clicks topic: how far ingest has read and counted (admins only).
export function IngestStatus() {
  const [{ data, error, fetching }, refetch] = useQuery<{ ingestStatus: Partition[] }>({
    query: operations.IngestStatus,
  });
  useEffect(() => {
    const timer = setInterval(() => refetch({ requestPolicy: 'network-only' }), 10_000);
    return () => clearInterval(timer);
  }, [refetch]);
  const now = Date.now();
  return (
    <section>
      <h2>Ingest status</h2>
      {error && <ProblemView error={error} />}
      {fetching && !data && <Loading />}
      {data && data.ingestStatus.length === 0 && <Empty>No partition has been read yet.</Empty>}
      {data && data.ingestStatus.length > 0 && (
        <table data-testid="ingest-status">
          <thead>
            <tr><th>partition</th><th>next offset</th><th>newest event</th><th>watermark</th><th>lag</th></tr>
          </thead>
          <tbody>
            {data.ingestStatus.map((p) => (
              <tr key={p.partition} data-testid="partition-row">
                <td>{p.partition}</td>
                <td className="count">{p.nextOffset ?? '–'}</td>
                <td>{p.newestEventTime ?? '–'}</td>
                <td>{p.watermark ?? '–'}</td>
                <td>{p.newestEventTime ? `${Math.round((now - Date.parse(p.newestEventTime)) / 1000)} s` : '–'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
