//! Modal questions — confirm a deletion, name a new file, approve a capability grant — as
//! promises, so the code that asks reads top to bottom.

import { type ReactElement, useCallback, useEffect, useRef, useState } from 'react';

export type Question = {
  title: string;
  message?: string;
  /** Ask for text, starting with this value. */
  input?: string;
  /** Checks typed text; the message is shown and OK is disabled while it fails. */
  check?: (text: string) => string | null;
  confirm: string;
  danger?: boolean;
  /** Extra buttons besides OK and Cancel; the answer is the button's label. */
  choices?: string[];
};

export type Answer = { button: string; text: string } | null;

export type Ask = (q: Question) => Promise<Answer>;

type Open = Question & { resolve: (a: Answer) => void };

export function useDialog(): [Ask, ReactElement | null] {
  const [open, setOpen] = useState<Open | null>(null);
  const ask: Ask = useCallback((q) => new Promise((resolve) => setOpen({ ...q, resolve })), []);
  const element = open ? (
    <Dialog
      q={open}
      done={(a) => {
        setOpen(null);
        open.resolve(a);
      }}
    />
  ) : null;
  return [ask, element];
}

function Dialog({ q, done }: { q: Open; done: (a: Answer) => void }) {
  const [text, setText] = useState(q.input ?? '');
  const input = useRef<HTMLInputElement>(null);
  const ok = useRef<HTMLButtonElement>(null);
  const problem = q.input !== undefined && q.check ? q.check(text) : null;
  useEffect(() => {
    if (input.current) {
      input.current.focus();
      // Select the name without its extension, as file managers do.
      const dot = text.lastIndexOf('.');
      input.current.setSelectionRange(0, dot > 0 ? dot : text.length);
    } else ok.current?.focus();
    // Only on open.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  return (
    <div className="modal-backdrop" onKeyDown={(e) => e.key === 'Escape' && done(null)}>
      <form
        className="modal"
        role="dialog"
        aria-label={q.title}
        onSubmit={(e) => {
          e.preventDefault();
          if (!problem) done({ button: q.confirm, text });
        }}
      >
        <h2>{q.title}</h2>
        {q.message && <p className="modal-message">{q.message}</p>}
        {q.input !== undefined && <input ref={input} aria-label={q.title} value={text} onChange={(e) => setText(e.target.value)} />}
        {problem && text !== '' && <p className="field-error">{problem}</p>}
        <div className="modal-buttons">
          {q.choices?.map((c) => (
            <button type="button" key={c} onClick={() => done({ button: c, text })}>
              {c}
            </button>
          ))}
          <button type="button" onClick={() => done(null)}>
            Cancel
          </button>
          <button ref={ok} type="submit" className={q.danger ? 'danger' : 'primary'} disabled={!!problem}>
            {q.confirm}
          </button>
        </div>
      </form>
    </div>
  );
}
