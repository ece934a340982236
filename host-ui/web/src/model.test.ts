// The UI's pure logic, fixture in → expected out: languages, paths, tabs, the explorer tree,
// settings checks, themes and capability descriptions.
import { describe, expect, it } from 'vitest';
import { languageFor } from './languages';
import { checkName, isWithin, renamed, parentOf } from './paths';
import { closeTab, noTabs, openTab, renameTabs, updateTab } from './tabs';
import { forget, staleListings, visibleRows, type Entry } from './tree';
import { checkSetting, fromInput, type SettingsSchema } from './settings';
import { cssVariables, dark, isLight, light, safeTokens, themeTokens } from './theme';
import { describeCapability } from './capabilities';

describe('languageFor', () => {
  it.each([
    ['src/main.rs', 'Rust'],
    ['web/App.tsx', 'TypeScript JSX'],
    ['index.ts', 'TypeScript'],
    ['a.mjs', 'JavaScript'],
    ['tool.py', 'Python'],
    ['Cargo.toml', 'TOML'],
    ['Cargo.lock', 'TOML'],
    ['package.json', 'JSON'],
    ['README.md', 'Markdown'],
    ['index.html', 'HTML'],
    ['style.css', 'CSS'],
    ['ci.yml', 'YAML'],
    ['run.sh', 'Shell'],
    ['LICENSE', 'Plain text'],
    ['.gitignore', 'Plain text'],
    ['archive.tar.gz', 'Plain text'],
    ['UPPER.RS', 'Rust'],
  ])('%s is %s', (path, name) => expect(languageFor(path).name).toBe(name));

  it('loads every grammar it names', async () => {
    for (const p of ['a.rs', 'a.ts', 'a.py', 'a.toml', 'a.json', 'a.md', 'a.html', 'a.css', 'a.yaml', 'a.sh']) {
      expect(await languageFor(p).load()).toBeTruthy();
    }
  });
});

describe('paths', () => {
  it('follows renames of files and of folders holding them', () => {
    expect(renamed('src/a.rs', 'src/a.rs', 'src/b.rs')).toBe('src/b.rs');
    expect(renamed('src/x/a.rs', 'src', 'lib')).toBe('lib/x/a.rs');
    expect(renamed('srcs/a.rs', 'src', 'lib')).toBe('srcs/a.rs');
    expect(isWithin('a/b', '')).toBe(true);
    expect(parentOf('a/b/c')).toBe('a/b');
    expect(parentOf('c')).toBe('');
  });
  it.each([
    ['', 'a name is needed'],
    ['/etc/passwd', 'no leading /'],
    ['../out', '..'],
    ['a//b', 'empty'],
  ])('refuses %j', (name, why) => expect(checkName(name)).toContain(why));
  it('accepts names and paths inside', () => {
    expect(checkName('new.rs')).toBeNull();
    expect(checkName('src/deep/new.rs')).toBeNull();
  });
});

describe('tabs', () => {
  it('opens once, closes to the right neighbour, follows renames', () => {
    let s = openTab(openTab(openTab(noTabs, 'a', 1), 'b', 2), 'c', 3);
    s = openTab(s, 'a', 9);
    expect(s.tabs.map((t) => t.path)).toEqual(['a', 'b', 'c']);
    expect(s.active).toBe('a');
    expect(s.tabs[0].mtimeMs).toBe(1);
    s = closeTab(s, 'a');
    expect(s.active).toBe('b');
    s = closeTab(s, 'c');
    expect(s.active).toBe('b');
    s = renameTabs(updateTab(s, 'b', { dirty: true }), (p) => (p === 'b' ? 'd/b' : p));
    expect(s).toEqual({ tabs: [{ path: 'd/b', dirty: true, mtimeMs: 2, disk: 'same' }], active: 'd/b' });
    expect(closeTab(s, 'd/b')).toEqual({ tabs: [], active: null });
  });
});

describe('tree', () => {
  const e = (name: string, dir = false): Entry => ({ name, dir, size: 0, mtime_ms: 0 });
  const listings = new Map<string, Entry[]>([
    ['', [e('src', true), e('README.md')]],
    ['src', [e('bin', true), e('main.rs')]],
    ['src/bin', [e('tool.rs')]],
  ]);
  it('shows children of open folders only, indented', () => {
    expect(visibleRows(listings, new Set(['src'])).map((r) => `${r.depth}:${r.path}`)).toEqual(['0:src', '1:src/bin', '1:src/main.rs', '0:README.md']);
    expect(visibleRows(listings, new Set()).map((r) => r.path)).toEqual(['src', 'README.md']);
  });
  it('knows which listings a change makes stale', () => {
    expect(staleListings(['src/new.rs', 'README.md', 'elsewhere/x'], listings.keys())).toEqual(['', 'src']);
    expect(staleListings(['src/bin'], listings.keys())).toEqual(['src', 'src/bin']);
  });
  it('forgets a removed folder and everything under it', () => {
    const l = new Map(listings);
    const open = new Set(['src', 'src/bin']);
    forget(l, open, 'src');
    expect([...l.keys()]).toEqual(['']);
    expect(open.size).toBe(0);
  });
});

describe('settings', () => {
  // The schema the server publishes (host-ui/src/settings_service.rs).
  const schema: SettingsSchema = {
    properties: {
      theme: { type: 'string', pattern: '^(light|dark|motif:[a-z][a-z0-9-]{1,63})$' },
      font_size: { type: 'integer', minimum: 8, maximum: 48 },
      tab_size: { type: 'integer', minimum: 1, maximum: 16 },
      word_wrap: { type: 'boolean' },
      keymap: { enum: ['default', 'vim', 'emacs'] },
    },
  };
  it.each([
    ['font_size', 100, 'settings.font_size: expected a whole number from 8 to 48'],
    ['font_size', 12.5, 'settings.font_size: expected a whole number'],
    ['font_size', 'big', 'settings.font_size: expected a whole number'],
    ['word_wrap', 'yes', 'settings.word_wrap: expected true or false'],
    ['keymap', 'nano', 'settings.keymap: expected one of "default", "vim", "emacs"'],
    ['theme', 'motif:../x', 'settings.theme:'],
    ['colour', 'red', 'settings.colour: no such setting'],
  ])('refuses %s = %j naming the field', (field, value, message) => expect(checkSetting(schema, field, value)).toContain(message));
  it.each([
    ['font_size', 18],
    ['theme', 'motif:aurora'],
    ['keymap', 'vim'],
    ['word_wrap', true],
  ])('accepts %s = %j', (field, value) => expect(checkSetting(schema, field, value)).toBeNull());
  it('reads numbers from inputs, leaves the rest for the check to name', () => {
    expect(fromInput(schema, 'font_size', '16')).toBe(16);
    expect(fromInput(schema, 'font_size', 'x')).toBe('x');
    expect(fromInput(schema, 'font_size', '')).toBe('');
    expect(fromInput(schema, 'theme', 'light')).toBe('light');
  });
});

describe('themes', () => {
  it('lays a motif over dark and keeps only plain colours', () => {
    const t = themeTokens('motif:aurora', { background: '#0b1021', accent: 'red; background: url(evil)', 'editor.cursor': 'rgb(1, 2, 3)', 'x{': '#fff', size: 12 });
    expect(t.background).toBe('#0b1021');
    expect(t.accent).toBe(dark.accent);
    expect(t['editor.cursor']).toBe('rgb(1, 2, 3)');
    expect(Object.keys(safeTokens({ 'x{': '#fff' }))).toEqual([]);
  });
  it('picks built-ins and names CSS variables', () => {
    expect(themeTokens('light')).toBe(light);
    expect(themeTokens('motif:gone')).toBe(dark);
    expect(cssVariables({ 'editor.background': '#fff' })).toEqual({ '--editor-background': '#fff' });
    expect(isLight(light)).toBe(true);
    expect(isLight(dark)).toBe(false);
  });
});

describe('describeCapability', () => {
  it.each([
    ['fs.read:workspace', 'read files in the whole workspace', 'medium'],
    ['fs.write:workspace/src', 'create, change and delete files in the workspace folder src', 'high'],
    ['env:HOME', 'read the environment variable HOME', 'medium'],
    ['env:CARGO_*', 'read environment variables starting with CARGO_', 'medium'],
    ['net.connect:api.example.com:*', 'open network connections to api.example.com (any port)', 'high'],
    ['caret.call:text-tools/todos', 'call todos of the caret text-tools', 'medium'],
    ['pit.artifacts.put', "use put of the Pit's artifacts service", 'medium'],
    ['ui.theme', 'restyle the IDE with its theme', 'low'],
  ])('%s', (cap, text, risk) => expect(describeCapability(cap)).toEqual({ text, risk }));
});

describe('melody runs', () => {
  it('folds progress into node states, even events that beat the run answer', async () => {
    const { addRun, applyProgress, isMelody } = await import('./runs');
    let runs = applyProgress([], { job: 3, kind: 'started', node: 'todos', attempt: 1 });
    runs = addRun(runs, 'm.toml', { job: 3, name: 'report', nodes: ['todos', 'loud'] });
    expect(runs[0].nodes).toEqual([{ id: 'todos', state: 'started', attempt: 1 }, { id: 'loud', state: 'pending' }]);
    runs = applyProgress(runs, { job: 3, kind: 'done', node: 'todos', ms: 4 });
    runs = applyProgress(runs, { job: 3, kind: 'failed', node: 'loud', error: 'denied' });
    runs = applyProgress(runs, { job: 3, kind: 'finished', ok: false, run_id: 'r1', elapsed_ms: 9 });
    expect(runs).toEqual([
      {
        job: 3,
        name: 'report',
        path: 'm.toml',
        nodes: [
          { id: 'todos', state: 'done', attempt: 1, ms: 4 },
          { id: 'loud', state: 'failed', error: 'denied' },
        ],
        finished: { ok: false, runId: 'r1', elapsedMs: 9, cancelled: undefined, error: undefined },
      },
    ]);
    expect(applyProgress(runs, { nonsense: true })).toBe(runs);
    expect(isMelody('a.toml', '[melody]\n[[node]]\nid = "x"')).toBe(true);
    expect(isMelody('Cargo.toml', '[package]\nname = "x"')).toBe(false);
    expect(isMelody('a.md', '[[node]]')).toBe(false);
  });
});

describe('motif panels (vdom)', () => {
  it('builds a tree of allowed tags with events and escapes nothing it should not', async () => {
    const { buildTree } = await import('./vdom');
    const t = buildTree([
      { tag: 'section', attrs: { class: 'aurora-todos' }, children: [1, 3] },
      { tag: 'h2', attrs: {}, children: [2] },
      { tag: '#text', text: '<b>2 open</b>' },
      { tag: 'li', attrs: { 'on:click': 'toggle', class: 'done"><script>', style: 'x', onclick: 'evil()' }, key: 'a:1', children: [] },
    ]);
    expect(t).toEqual({
      kind: 'element', index: 0, tag: 'section', key: '0', className: 'aurora-todos', title: undefined, events: [],
      children: [
        { kind: 'element', index: 1, tag: 'h2', key: '1', className: undefined, title: undefined, events: [], children: [{ kind: 'text', text: '<b>2 open</b>' }] },
        { kind: 'element', index: 3, tag: 'li', key: 'a:1', className: 'donescript', title: undefined, events: ['click'], children: [] },
      ],
    });
  });
  it.each([
    [[], 'no nodes'],
    [[{ tag: 'script', children: [] }], '<script> is not allowed'],
    [[{ tag: 'div', children: [0] }], 'must come after'],
    [[{ tag: 'div', children: [1, 1] }, { tag: 'p' }], 'appears twice'],
    [[{ tag: 'div', children: [5] }], 'node 5 does not exist'],
    ['nonsense', 'no nodes'],
  ])('refuses %j, naming the node', async (nodes, why) => {
    const { buildTree } = await import('./vdom');
    expect(buildTree(nodes)).toContain(why);
  });
});
