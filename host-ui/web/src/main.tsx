//! Entry point: find the token (from the URL printed by `symphony serve`, then kept for this
//! tab and removed from the address bar), connect to `/rpc`, and mount the IDE.

import { createRoot } from 'react-dom/client';
import { App } from './App';
import { Rpc, rpcUrl } from './rpc';
import './style.css';

const root = createRoot(document.getElementById('root') as HTMLElement);

function Problem({ text }: { text: string }) {
  return (
    <div className="problem">
      <h1>Symphony</h1>
      <p>{text}</p>
    </div>
  );
}

const url = rpcUrl(window.location, window.sessionStorage);
if (new URLSearchParams(window.location.search).has('token')) window.history.replaceState(null, '', window.location.pathname);
if (!url) {
  root.render(<Problem text="No access token. Open the URL that `symphony serve` (or `cargo xtask start`) printed; it ends in ?token=…" />);
} else {
  Rpc.connect(url).then(
    (rpc) => root.render(<App rpc={rpc} />),
    (e: Error) => root.render(<Problem text={`${e.message}. Is symphony serve running, and is the token current? Open the URL it printed.`} />),
  );
}
