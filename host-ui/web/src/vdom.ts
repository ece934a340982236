//! A motif's panel as the kernel sends it — a flat list of virtual-DOM nodes, children by index,
//! node 0 the root — checked and turned into a tree the UI can draw. Only plain structural
//! tags and a few attributes pass; `on:<event>` attributes become event bindings; nothing a
//! caret sends can add scripts, styles, links or frames to the page.

export type VNode = { tag: string; attrs?: Record<string, string>; children?: number[]; key?: string | null; text?: string | null };
export type Tree =
  | { kind: 'text'; text: string }
  | { kind: 'element'; index: number; tag: string; key: string; className?: string; title?: string; events: string[]; children: Tree[] };

const TAGS = new Set([
  'section', 'div', 'span', 'p', 'h1', 'h2', 'h3', 'h4', 'ul', 'ol', 'li', 'code', 'pre', 'strong', 'em', 'small',
  'button', 'label', 'table', 'thead', 'tbody', 'tr', 'td', 'th', 'header', 'footer', 'nav', 'article', 'hr', 'br',
]);
const MAX_NODES = 10_000;

/** The tree of a panel, or why it cannot be drawn (naming the node). */
export function buildTree(nodes: unknown): Tree | string {
  if (!Array.isArray(nodes) || nodes.length === 0) return 'the panel has no nodes';
  if (nodes.length > MAX_NODES) return `the panel has ${nodes.length} nodes; at most ${MAX_NODES} are drawn`;
  const seen = new Set<number>();
  const build = (i: number, depth: number): Tree | string => {
    if (seen.has(i)) return `node ${i} appears twice (a cycle or a shared child)`;
    seen.add(i);
    if (depth > 64) return `node ${i} is nested more than 64 deep`;
    const n = nodes[i] as VNode | undefined;
    if (!n || typeof n.tag !== 'string') return `node ${i} does not exist or has no tag`;
    if (n.tag === '#text') return { kind: 'text', text: String(n.text ?? '') };
    if (!TAGS.has(n.tag)) return `node ${i}: <${n.tag}> is not allowed in a panel`;
    const attrs = n.attrs ?? {};
    const children: Tree[] = [];
    for (const c of n.children ?? []) {
      if (!Number.isInteger(c) || c <= i) return `node ${i}: child ${c} must come after its parent`;
      const t = build(c, depth + 1);
      if (typeof t === 'string') return t;
      children.push(t);
    }
    const events = Object.keys(attrs)
      .filter((a) => a.startsWith('on:'))
      .map((a) => a.slice(3))
      .filter((e) => e === 'click' || e === 'input' || e === 'change');
    return {
      kind: 'element',
      index: i,
      tag: n.tag,
      key: n.key ?? String(i),
      className: typeof attrs.class === 'string' ? attrs.class.replace(/[^\w\s-]/g, '') : undefined,
      title: typeof attrs.title === 'string' ? attrs.title : undefined,
      events,
      children,
    };
  };
  return build(0, 0);
}
