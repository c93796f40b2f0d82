import { BarElement, CategoryScale, Chart as ChartJS, LinearScale, Tooltip } from 'chart.js';
import { useState } from 'react';
import { Bar } from 'react-chartjs-2';
import { useQuery } from 'urql';
import { FilterFields, filterOrNull } from '../components/FilterFields';
import { RangePicker, rangeVariables, useLastHour } from '../components/RangePicker';
import { Empty, Loading, ProblemView } from '../components/States';
import { type AdClicksAnswer, type Filter, operations } from '../operations';
import { minuteLabel } from '../time';

ChartJS.register(BarElement, CategoryScale, LinearScale, Tooltip);

// One ad's clicks over a range, minute by minute or hour by hour, as a chart; the total is
// the adClicks answer's.
export function OneAd() {
  const [adId, setAdId] = useState('');
  const [range, setRange] = useLastHour();
  const [granularity, setGranularity] = useState<'MINUTE' | 'HOUR'>('MINUTE');
  const [filter, setFilter] = useState<Filter>({});
  const [{ data, error, fetching }] = useQuery<{ adClicks: AdClicksAnswer }>({
    query: operations.AdClicks,
    variables: { adId, ...rangeVariables(range), granularity,
                 filter: filterOrNull(filter) },
    pause: !adId,
  });
  const answer = data?.adClicks;
  return (
    <section>
      <h2>One ad</h2>
      <div className="controls">
        <label>
          ad{' '}
          <input data-testid="ad-id" placeholder="ad id" defaultValue={adId}
                 onBlur={(e) => setAdId(e.target.value.trim())}
                 onKeyDown={(e) => e.key === 'Enter' && setAdId(e.currentTarget.value.trim())} />
        </label>
        <RangePicker range={range} onChange={setRange} />
        <select data-testid="granularity" value={granularity}
                onChange={(e) => setGranularity(e.target.value as 'MINUTE' | 'HOUR')}>
          <option value="MINUTE">by minute</option>
          <option value="HOUR">by hour</option>
        </select>
        <FilterFields filter={filter} onChange={setFilter} />
      </div>
      {!adId && <Empty>Enter an ad id.</Empty>}
      {error && <ProblemView error={error} />}
      {fetching && <Loading />}
      {answer && (
        <>
          <p className="window">
            <span data-testid="ad-total">{answer.clicks}</span> clicks in {answer.window.minutes} minutes
            ({answer.window.complete ? 'complete' : 'still counting'}, from {answer.source})
          </p>
          {answer.clicks === 0 && <Empty>No clicks of this ad in this window.</Empty>}
          <div className="chart" data-testid="ad-chart">
            <Bar
              data={{
                labels: answer.series.map((b) => minuteLabel(b.start)),
                datasets: [{ label: 'clicks', data: answer.series.map((b) => b.clicks), backgroundColor: '#3b6fb6' }],
              }}
              options={{ animation: false, responsive: true, maintainAspectRatio: false }}
            />
          </div>
          <details>
            <summary>the chart's points</summary>
            <table data-testid="series">
              <thead>
                <tr><th>{granularity === 'HOUR' ? 'hour' : 'minute'} (UTC)</th><th>clicks</th></tr>
              </thead>
              <tbody>
                {answer.series.map((b) => (
                  <tr key={b.start} data-start={b.start}>
                    <td>{b.start}</td>
                    <td className="count">{b.clicks}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </details>
        </>
      )}
    </section>
  );
}
