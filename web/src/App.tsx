import { lazy, Suspense, useEffect, useMemo, useState } from 'react';
import { Provider } from 'urql';
import { makeClient, storeToken, storedToken } from './api';
import { AnyWindow } from './pages/AnyWindow';
import { IngestStatus } from './pages/IngestStatus';
import { LiveTopAds } from './pages/LiveTopAds';
import { Retention } from './pages/Retention';
import { Loading } from './components/States';

// The chart library is most of the bundle: loaded when the one-ad page is opened, so the
// live page renders sooner.
const OneAd = lazy(() => import('./pages/OneAd').then((m) => ({ default: m.OneAd })));

const PAGES = {
  live: { title: 'Live top ads', page: LiveTopAds },
  window: { title: 'Any window', page: AnyWindow },
  ad: { title: 'One ad', page: OneAd },
  ingest: { title: 'Ingest status', page: IngestStatus },
  retention: { title: 'Retention', page: Retention },
} as const;
type PageName = keyof typeof PAGES;

const pageFromHash = (): PageName => {
  const name = window.location.hash.slice(1);
  return name in PAGES ? (name as PageName) : 'live';
};

export function App() {
  const [token, setToken] = useState(storedToken);
  const [page, setPage] = useState<PageName>(pageFromHash);
  // Links, the keyboard, back and forward all change the hash.
  useEffect(() => {
    const follow = () => setPage(pageFromHash());
    window.addEventListener('hashchange', follow);
    return () => window.removeEventListener('hashchange', follow);
  }, []);
  // A new client (and WebSocket) per token: the token is in every request's headers and
  // in the WebSocket's connection_init.
  const client = useMemo(() => makeClient(token), [token]);
  const Page = PAGES[page].page;
  return (
    <Provider value={client}>
      <header>
        <h1>adclick ad manager</h1>
        <nav>
          {(Object.keys(PAGES) as PageName[]).map((name) => (
            <a key={name} href={`#${name}`} data-testid={`nav-${name}`}
               className={name === page ? 'chosen' : ''}
               aria-current={name === page ? 'page' : undefined}>
              {PAGES[name].title}
            </a>
          ))}
        </nav>
        <label className="token">
          token{' '}
          <input type="password" data-testid="token" defaultValue={token} placeholder="bearer token"
                 onChange={(e) => { storeToken(e.target.value.trim()); setToken(e.target.value.trim()); }} />
        </label>
      </header>
      <main key={`${page}:${token}`}>
        <Suspense fallback={<Loading />}>
          <Page />
        </Suspense>
      </main>
    </Provider>
  );
}
