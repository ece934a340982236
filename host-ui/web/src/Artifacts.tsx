//! The artifacts view: full-text search over the Pit's artifact store (ranked hits with their
//! snippets and quality), a name's history (versions, authors, sizes, scores) and any version's
//! content — all through `pit/artifacts`, the same ops carets and melodies use.

import { useCallback, useEffect, useState, type FormEvent } from 'react';
import type { Rpc } from './rpc';
import { Icon } from './icons';
import { base64Bytes, size, snippetParts } from './artifacts';

type Hit = { name: string; version: number; kind: string; tags: string[]; quality: number | null; score: number; snippet: string };
type Version = { name: string; version: number; len: number; created_at: string; meta: { author: string; kind: string }; quality?: { score: number; class: string } | null };
type Stats = { names: number; versions: number; logical_bytes: number; stored_bytes: number };
type Content = { text?: string; base64?: string };

type Props = { rpc: Rpc };

export function Artifacts({ rpc }: Props) {
  const [stats, setStats] = useState<Stats | null>(null);
  const [query, setQuery] = useState('');
  const [hits, setHits] = useState<Hit[] | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const [history, setHistory] = useState<{ name: string; versions: Version[] } | null>(null);
  const [shown, setShown] = useState<{ spec: string; content: Content } | null>(null);

  const refresh = useCallback(async () => {
    try {
      setStats(await rpc.invoke<Stats>('pit/artifacts', 'stats', {}));
    } catch (e) {
      setProblem((e as Error).message);
    }
  }, [rpc]);
  useEffect(() => void refresh(), [refresh]);

  const search = async (e?: FormEvent) => {
    e?.preventDefault();
    if (!query.trim()) return;
    try {
      const answer = await rpc.invoke<{ hits: Hit[] }>('pit/artifacts', 'search', { query, limit: 50 });
      setHits(answer.hits);
      setProblem(null);
    } catch (err) {
      setHits(null);
      setProblem((err as Error).message);
    }
  };

  const open = async (name: string) => {
    try {
      const answer = await rpc.invoke<{ name: string; versions: Version[] }>('pit/artifacts', 'log', { name });
      setHistory(answer);
      const latest = answer.versions.at(-1);
      if (latest) await show(`${name}@${latest.version}`);
    } catch (err) {
      setProblem((err as Error).message);
    }
  };

  const show = async (spec: string) => {
    try {
      setShown({ spec, content: await rpc.invoke<Content>('pit/artifacts', 'get', { spec }) });
    } catch (err) {
      setProblem((err as Error).message);
    }
  };

  return (
    <section className="artifacts" aria-label="Artifacts">
      <header className="side-header">
        <span>Artifacts</span>
        <span className="toolbar">
          <button title="Refresh" aria-label="Refresh artifacts" onClick={() => void refresh().then(() => search())}><Icon name="refresh" /></button>
        </span>
      </header>
      {stats && (
        <p className="artifact-stats muted">
          {stats.names} names, {stats.versions} versions · {size(stats.logical_bytes)} of content, {size(stats.stored_bytes)} on disk
        </p>
      )}
      <form className="artifact-search" role="search" onSubmit={(e) => void search(e)}>
        <input aria-label="Search artifacts" placeholder="Search: words, name, kind:code, tags:x" value={query} onChange={(e) => setQuery(e.target.value)} />
      </form>
      {problem && <p className="field-error" role="alert">{problem}</p>}
      {hits?.length === 0 && <p className="empty">Nothing matches “{query}”.</p>}
      {hits && hits.length > 0 && (
        <ul className="artifact-hits" aria-label="Search results">
          {hits.map((h) => (
            <li key={h.name} data-artifact={h.name}>
              <button className={`artifact-hit ${history?.name === h.name ? 'selected' : ''}`} onClick={() => void open(h.name)}>
                <span className="artifact-name">
                  {h.name}
                  <span className="version">@{h.version}</span>
                  {h.kind && <span className="kind">{h.kind}</span>}
                  {h.quality !== null && <span className="badge" title="quality score">q {h.quality.toFixed(2)}</span>}
                </span>
                <span className="snippet">{snippetParts(h.snippet).map((p, i) => (p.match ? <mark key={i}>{p.text}</mark> : p.text))}</span>
              </button>
            </li>
          ))}
        </ul>
      )}
      {history && (
        <div className="artifact-history" aria-label={`History of ${history.name}`}>
          <h4>History of {history.name} (newest first)</h4>
          <ol>
            {[...history.versions].reverse().map((v) => {
              const spec = `${v.name}@${v.version}`;
              return (
                <li key={v.version}>
                  <button className={shown?.spec === spec ? 'selected' : ''} data-spec={spec} onClick={() => void show(spec)}>
                    <span className="version">@{v.version}</span> {new Date(v.created_at).toLocaleString()} · {v.meta.author} · {size(v.len)}
                    {v.quality && <span className="badge">q {v.quality.score.toFixed(2)}</span>}
                  </button>
                </li>
              );
            })}
          </ol>
        </div>
      )}
      {shown && (
        <div className="artifact-content">
          <h4>{shown.spec}</h4>
          {shown.content.text !== undefined ? (
            <pre>{shown.content.text}</pre>
          ) : (
            <p className="muted">Binary content, {size(base64Bytes(shown.content.base64 ?? ''))}.</p>
          )}
        </div>
      )}
    </section>
  );
}
