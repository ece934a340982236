//! Keys typed into a terminal reach its PTY in order, including those typed before it opened.

import { describe, expect, it } from 'vitest';
import { TerminalKeys } from './keys';

describe('terminal keys', () => {
  it('typed before the terminal opened are sent once it opens, in order', () => {
    const sent: string[] = [];
    const keys = new TerminalKeys((d) => sent.push(d));
    keys.typed('echo ');
    keys.typed('hi\r');
    expect(sent).toEqual([]);
    keys.opened();
    expect(sent).toEqual(['echo hi\r']);
    keys.typed('x');
    expect(sent).toEqual(['echo hi\r', 'x']);
  });

  it('are dropped after the shell exited, and a late open sends nothing', () => {
    const sent: string[] = [];
    const keys = new TerminalKeys((d) => sent.push(d));
    keys.typed('lost');
    keys.exited();
    keys.opened();
    keys.typed('after');
    expect(sent).toEqual([]);
  });
});
