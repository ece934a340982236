//! Melody runs started from the IDE, as data: `melody.progress` events folded into one view
//! per job (each node's state, time and error; the run's end).

export type NodeState = 'pending' | 'started' | 'retrying' | 'done' | 'failed' | 'skipped' | 'resumed';
export type NodeView = { id: string; state: NodeState; ms?: number; attempt?: number; error?: string };
export type RunView = {
  job: number;
  name: string;
  path: string;
  nodes: NodeView[];
  finished?: { ok: boolean; runId?: string; elapsedMs?: number; cancelled?: boolean; error?: string };
};

/**
 * Adds a run as `pit/melodies run` answered it (every node pending, in melody order), keeping
 * what progress events already said if they arrived before the answer.
 */
export function addRun(runs: RunView[], path: string, answer: { job: number; name: string; nodes: string[] }): RunView[] {
  const fresh: RunView = { job: answer.job, name: answer.name, path, nodes: answer.nodes.map((id) => ({ id, state: 'pending' })) };
  const early = runs.find((r) => r.job === answer.job);
  if (!early) return [...runs, fresh];
  return runs.map((r) => (r.job !== answer.job ? r : { ...fresh, nodes: fresh.nodes.map((n) => early.nodes.find((m) => m.id === n.id) ?? n), finished: early.finished }));
}

type Progress = { job: number; kind: string; node?: string; ms?: number; attempt?: number; error?: string; because?: string; ok?: boolean; run_id?: string; elapsed_ms?: number; cancelled?: boolean };

/** Applies one `melody.progress` event; events of jobs not (yet) known are kept as a bare run. */
export function applyProgress(runs: RunView[], raw: unknown): RunView[] {
  const e = raw as Progress;
  if (typeof e?.job !== 'number') return runs;
  const known = runs.some((r) => r.job === e.job);
  const list = known ? runs : [...runs, { job: e.job, name: `job ${e.job}`, path: '', nodes: [] }];
  return list.map((r) => {
    if (r.job !== e.job) return r;
    if (e.kind === 'finished') {
      return { ...r, finished: { ok: !!e.ok, runId: e.run_id, elapsedMs: e.elapsed_ms, cancelled: e.cancelled, error: e.error } };
    }
    if (!e.node) return r;
    const state = (['started', 'retrying', 'done', 'failed', 'skipped', 'resumed'] as const).find((k) => k === e.kind);
    if (!state) return r;
    const update = (n: NodeView): NodeView => ({ ...n, state, ms: e.ms ?? n.ms, attempt: e.attempt ?? n.attempt, error: e.error ?? e.because ?? (state === 'done' ? undefined : n.error) });
    const has = r.nodes.some((n) => n.id === e.node);
    return { ...r, nodes: has ? r.nodes.map((n) => (n.id === e.node ? update(n) : n)) : [...r.nodes, update({ id: e.node, state: 'pending' })] };
  });
}

/** Whether a file's text is a melody (a TOML file with nodes). */
export function isMelody(path: string, text: string | null): boolean {
  return path.endsWith('.toml') && text !== null && /^\s*\[\[node\]\]/m.test(text);
}
