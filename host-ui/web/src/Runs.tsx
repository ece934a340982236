//! The melody runs panel: each run started from the IDE with its nodes' live states.

import type { RunView } from './runs';

export function Runs({ runs, cancel }: { runs: RunView[]; cancel: (job: number) => void }) {
  if (runs.length === 0) return <p className="empty">No melody runs yet. Open a melody (.toml with [[node]]s) and press Run melody.</p>;
  return (
    <div className="runs">
      {[...runs].reverse().map((r) => (
        <section key={r.job} className="run" data-job={r.job} aria-label={`Run of ${r.name}`}>
          <header>
            <strong>{r.name}</strong> <span className="muted">{r.path}</span>
            <span className="spacer" />
            {r.finished ? (
              <span className={`run-state ${r.finished.ok ? 'ok' : 'failed'}`}>
                {r.finished.ok ? 'ok' : r.finished.cancelled ? 'cancelled' : 'failed'}
                {r.finished.elapsedMs !== undefined && ` in ${r.finished.elapsedMs} ms`}
                {r.finished.runId && <span className="muted"> · run {r.finished.runId}</span>}
              </span>
            ) : (
              <button onClick={() => cancel(r.job)}>Cancel</button>
            )}
          </header>
          {r.finished?.error && <p className="field-error">{r.finished.error}</p>}
          <ul>
            {r.nodes.map((n) => (
              <li key={n.id} data-node={n.id} className={`node ${n.state}`}>
                <span className="node-state">{n.state}</span> <code>{n.id}</code>
                {n.ms !== undefined && <span className="muted"> {n.ms} ms</span>}
                {n.error && <span className="node-error"> — {n.error}</span>}
              </li>
            ))}
          </ul>
        </section>
      ))}
    </div>
  );
}
