//! A terminal's keys in order: held while its PTY is being opened, sent once it is open,
//! dropped after it has exited. Without the hold, keys typed into a just-opened terminal
//! (before the server answered `open`) were lost.

export class TerminalKeys {
  private held: string[] = [];
  private state: 'opening' | 'open' | 'exited' = 'opening';

  constructor(private readonly send: (data: string) => void) {}

  /** Keys from xterm.js. */
  typed(data: string): void {
    if (this.state === 'open') this.send(data);
    else if (this.state === 'opening') this.held.push(data);
  }

  /** The PTY is open: what was typed meanwhile goes first, in one write. */
  opened(): void {
    if (this.state !== 'opening') return;
    this.state = 'open';
    if (this.held.length) this.send(this.held.join(''));
    this.held = [];
  }

  /** The shell exited or the view is gone: nothing more is sent. */
  exited(): void {
    this.state = 'exited';
    this.held = [];
  }
}
