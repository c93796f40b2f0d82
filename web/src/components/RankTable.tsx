import type { RankedAd } from '../operations';

// A top list; with ``previous``, each ad's move since the list before it.
export function RankTable({ ads, previous }: { ads: RankedAd[]; previous?: RankedAd[] }) {
  const before = new Map((previous ?? []).map((ad) => [ad.adId, ad.rank]));
  return (
    <table data-testid="top-list">
      <thead>
        <tr>
          <th>rank</th>
          <th>ad</th>
          <th>clicks</th>
          {previous && <th>move</th>}
        </tr>
      </thead>
      <tbody>
        {ads.map((ad) => (
          <tr key={ad.adId} data-testid="top-row">
            <td>{ad.rank}</td>
            <td className="ad">{ad.adId}</td>
            <td className="count">{ad.clicks.toLocaleString()}</td>
            {previous && <td className="move">{move(before.get(ad.adId), ad.rank)}</td>}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function move(was: number | undefined, now: number): string {
  if (was === undefined) return 'new';
  if (was === now) return '';
  return was > now ? `▲${was - now}` : `▼${now - was}`;
}
