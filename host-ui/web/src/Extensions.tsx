//! The extensions view: installed carets with kind, version, declared and granted
//! capabilities and the audit's findings; grant (after a prompt saying what it allows) and
//! revoke; call an op and read the answer — all through the proxy, as any client would.

import { useCallback, useEffect, useState } from 'react';
import { RpcError, type Rpc } from './rpc';
import type { Ask } from './dialog';
import { describeCapability } from './capabilities';
import { Icon } from './icons';

type Grant = { capability: string; granted_at: string; by: string };
export type CaretInfo = {
  manifest: { id: string; name: string; version: string; kind: string; description?: string; capabilities: string[] };
  grants: Grant[];
  provenance: unknown;
};
type Finding = { code: string; severity: string; message: string };
type AuditCaret = { id: string; findings: Finding[] };

type Props = { rpc: Rpc; ask: Ask; report: (e: unknown) => void; onCaretEvents: (l: () => void) => () => void };

export function Extensions({ rpc, ask, report, onCaretEvents }: Props) {
  const [carets, setCarets] = useState<CaretInfo[] | null>(null);
  const [findings, setFindings] = useState<Record<string, Finding[]>>({});
  const [openId, setOpenId] = useState<string | null>(null);

  const refresh = useCallback(async () => {
    try {
      setCarets(await rpc.invoke<CaretInfo[]>('pit/carets', 'list', {}));
      const audit = await rpc.invoke<{ carets: AuditCaret[] }>('pit/audit', 'report', {});
      setFindings(Object.fromEntries(audit.carets.map((c) => [c.id, c.findings])));
    } catch (e) {
      report(e);
    }
  }, [rpc, report]);

  useEffect(() => {
    void refresh();
    return onCaretEvents(() => void refresh());
  }, [refresh, onCaretEvents]);

  const change = async (caret: CaretInfo, capability: string, grant: boolean) => {
    const { text, risk } = describeCapability(capability);
    const a = await ask(
      grant
        ? {
            title: `Grant ${capability} to ${caret.manifest.name}?`,
            message: `${caret.manifest.id} will be able to ${text} (${risk} risk) until you revoke it. Every use is written to the audit log.`,
            confirm: 'Grant',
            danger: risk === 'high',
          }
        : { title: `Revoke ${capability} from ${caret.manifest.name}?`, message: `${caret.manifest.id} will no longer be able to ${text}; its next attempt is denied and audited.`, confirm: 'Revoke' },
    );
    if (!a) return;
    try {
      await rpc.invoke('pit/carets', grant ? 'grant' : 'revoke', { id: caret.manifest.id, capabilities: [capability] });
    } catch (e) {
      report(e);
    }
    await refresh();
  };

  if (!carets) return <section className="extensions"><p className="empty">Loading…</p></section>;
  return (
    <section className="extensions" aria-label="Extensions">
      <header className="side-header">
        <span>Extensions ({carets.length})</span>
        <span className="toolbar">
          <button title="Refresh" aria-label="Refresh extensions" onClick={() => void refresh()}><Icon name="refresh" /></button>
        </span>
      </header>
      <ul className="caret-list">
        {carets.map((c) => {
          const granted = new Set(c.grants.map((g) => g.capability));
          const mine = findings[c.manifest.id] ?? [];
          const worst = mine.some((f) => f.severity === 'error') ? 'error' : mine.some((f) => f.severity === 'warning') ? 'warning' : null;
          const expanded = openId === c.manifest.id;
          return (
            <li key={c.manifest.id} className={`caret ${expanded ? 'expanded' : ''}`} data-caret={c.manifest.id}>
              <button className="caret-head" aria-expanded={expanded} onClick={() => setOpenId(expanded ? null : c.manifest.id)}>
                <strong>{c.manifest.name}</strong>
                <span className={`kind kind-${c.manifest.kind}`}>{c.manifest.kind}</span>
                <span className="version">{c.manifest.version}</span>
                {worst && <span className={`badge ${worst}`}>{mine.length} finding{mine.length === 1 ? '' : 's'}</span>}
              </button>
              {expanded && (
                <div className="caret-body">
                  <p className="muted">{c.manifest.id} · {c.manifest.description}</p>
                  <h4>Capabilities</h4>
                  {c.manifest.capabilities.length === 0 && <p className="muted">Asks for none.</p>}
                  <ul className="caps">
                    {[...new Set([...c.manifest.capabilities, ...granted])].map((cap) => (
                      <li key={cap} data-capability={cap}>
                        <code>{cap}</code>
                        <span className="muted"> — {describeCapability(cap).text}</span>
                        <span className={`grant-state ${granted.has(cap) ? 'granted' : 'not-granted'}`}>{granted.has(cap) ? 'granted' : 'not granted'}</span>
                        {granted.has(cap) ? (
                          <button onClick={() => void change(c, cap, false)}>Revoke</button>
                        ) : (
                          <button className="primary" onClick={() => void change(c, cap, true)}>Grant</button>
                        )}
                      </li>
                    ))}
                  </ul>
                  {mine.length > 0 && (
                    <>
                      <h4>Audit findings</h4>
                      <ul className="findings">
                        {mine.map((f, i) => (
                          <li key={i} className={f.severity}>
                            <code>{f.code}</code> {f.message}
                          </li>
                        ))}
                      </ul>
                    </>
                  )}
                  <CallForm rpc={rpc} id={c.manifest.id} />
                </div>
              )}
            </li>
          );
        })}
      </ul>
    </section>
  );
}

/** Calls one op of a caret and shows the answer, or the kernel's error (a denial names the capability). */
function CallForm({ rpc, id }: { rpc: Rpc; id: string }) {
  const [op, setOp] = useState('');
  const [ops, setOps] = useState<Array<{ name: string; description: string }>>([]);
  // The caret's own list of ops, when it describes itself.
  useEffect(() => {
    rpc.invoke<unknown>(`caret/${id}`, '@describe', '').then(
      (d) => Array.isArray(d) && setOps(d.filter((o) => typeof o?.name === 'string')),
      () => {},
    );
  }, [rpc, id]);
  const described = ops.find((o) => o.name === op.trim());
  const [payload, setPayload] = useState('');
  const [result, setResult] = useState<{ ok: boolean; text: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const call = async () => {
    setBusy(true);
    try {
      let body: unknown = payload;
      try {
        body = payload.trim() ? JSON.parse(payload) : '';
      } catch {
        // Not JSON: sent as text.
      }
      const answer = await rpc.invoke(`caret/${id}`, op.trim(), body);
      setResult({ ok: true, text: typeof answer === 'string' ? answer : JSON.stringify(answer, null, 2) });
    } catch (e) {
      const denied = e instanceof RpcError && e.kind === 'denied';
      setResult({ ok: false, text: `${denied ? 'Denied: ' : ''}${(e as Error).message}` });
    } finally {
      setBusy(false);
    }
  };
  return (
    <form
      className="call-form"
      onSubmit={(e) => {
        e.preventDefault();
        void call();
      }}
    >
      <h4>Call</h4>
      <input aria-label="Op" placeholder={ops.length ? `op: ${ops.map((o) => o.name).join(', ')}` : 'op'} list={`ops-${id}`} value={op} onChange={(e) => setOp(e.target.value)} />
      <datalist id={`ops-${id}`}>
        {ops.map((o) => (
          <option key={o.name} value={o.name}>
            {o.description}
          </option>
        ))}
      </datalist>
      {described && <small className="muted">{described.description}</small>}
      <textarea aria-label="Payload" placeholder="payload (JSON or text)" rows={2} value={payload} onChange={(e) => setPayload(e.target.value)} />
      <button className="primary" type="submit" disabled={busy || !op.trim()}>
        {busy ? 'Calling…' : 'Call'}
      </button>
      {result && (
        <pre className={`call-result ${result.ok ? 'ok' : 'error'}`} role="status">
          {result.text}
        </pre>
      )}
    </form>
  );
}
