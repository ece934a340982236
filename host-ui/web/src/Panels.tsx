//! Motif panels: each granted motif's panels drawn from the virtual DOM it renders
//! (`@render`), events sent back (`@event`) and the panel drawn again with the new state the
//! motif returns. The state lives here, in the UI; the motif is a pure function of it.

import { createElement, useCallback, useEffect, useState, type ReactNode } from 'react';
import type { Rpc } from './rpc';
import { buildTree, type Tree } from './vdom';
import type { CaretInfo } from './Extensions';

type Props = { rpc: Rpc; onCaretEvents: (l: () => void) => () => void };

export function Panels({ rpc, onCaretEvents }: Props) {
  const [panels, setPanels] = useState<Array<{ caret: string; panel: string }> | null>(null);
  const load = useCallback(async () => {
    const list = await rpc.invoke<CaretInfo[]>('pit/carets', 'list', {});
    const motifs = list.filter((c) => c.manifest.kind === 'motif' && c.grants.some((g) => g.capability === 'ui.panel'));
    const found: Array<{ caret: string; panel: string }> = [];
    for (const m of motifs) {
      try {
        for (const panel of await rpc.invoke<string[]>(`caret/${m.manifest.id}`, '@panels', '')) found.push({ caret: m.manifest.id, panel });
      } catch {
        // A motif that cannot list its panels shows none; its error is in the audit log.
      }
    }
    setPanels(found);
  }, [rpc]);
  useEffect(() => {
    void load();
    return onCaretEvents(() => void load());
  }, [load, onCaretEvents]);
  return (
    <section className="panels" aria-label="Panels">
      <header className="side-header">
        <span>Panels</span>
      </header>
      {panels?.length === 0 && <p className="empty">No motif panels. A motif shows its panels here once it is granted ui.panel.</p>}
      {panels?.map((p) => <Panel key={`${p.caret}/${p.panel}`} rpc={rpc} caret={p.caret} panel={p.panel} />)}
    </section>
  );
}

function Panel({ rpc, caret, panel }: { rpc: Rpc; caret: string; panel: string }) {
  const [state, setState] = useState('');
  const [tree, setTree] = useState<Tree | string | null>(null);
  useEffect(() => {
    let stale = false;
    rpc.invoke<unknown>(`caret/${caret}`, '@render', { panel, state }).then(
      (nodes) => !stale && setTree(buildTree(nodes)),
      (e: Error) => !stale && setTree(e.message),
    );
    return () => {
      stale = true;
    };
  }, [rpc, caret, panel, state]);
  const send = async (node: number, kind: string, value: string) => {
    try {
      const next = await rpc.invoke<unknown>(`caret/${caret}`, '@event', { panel, state, event: { node, kind, value } });
      setState(typeof next === 'string' ? next : JSON.stringify(next));
    } catch (e) {
      setTree((e as Error).message);
    }
  };
  return (
    <article className="motif-panel" data-panel={`${caret}/${panel}`}>
      <h3>
        {caret} · {panel}
      </h3>
      {tree === null ? <p className="empty">Rendering…</p> : typeof tree === 'string' ? <p className="field-error">{tree}</p> : draw(tree, send)}
    </article>
  );
}

function draw(t: Tree, send: (node: number, kind: string, value: string) => void): ReactNode {
  if (t.kind === 'text') return t.text;
  const props: Record<string, unknown> = { key: t.key, className: t.className, title: t.title, 'data-node': t.index };
  if (t.events.includes('click')) {
    props.onClick = (e: { stopPropagation(): void }) => {
      e.stopPropagation();
      send(t.index, 'click', '');
    };
    props.role = 'button';
    props.tabIndex = 0;
  }
  if (t.events.includes('input') || t.events.includes('change')) {
    props.onInput = (e: { currentTarget: { textContent: string | null } }) => send(t.index, 'input', e.currentTarget.textContent ?? '');
  }
  return createElement(t.tag, props, ...t.children.map((c) => draw(c, send)));
}
