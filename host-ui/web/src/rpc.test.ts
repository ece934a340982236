// The JSON-RPC client against a scripted socket: replies matched by id, errors typed, events
// routed (even those that arrive before their subscription's reply), a closed socket fails all.
import { describe, expect, it } from 'vitest';
import { Rpc, RpcError, rpcUrl, type Socket } from './rpc';

class FakeSocket implements Socket {
  sent: any[] = [];
  onmessage: ((e: { data: unknown }) => void) | null = null;
  onclose: ((e: { code: number; reason: string }) => void) | null = null;
  send(text: string) {
    this.sent.push(JSON.parse(text));
  }
  close() {
    this.onclose?.({ code: 1000, reason: '' });
  }
  reply(message: unknown) {
    this.onmessage?.({ data: JSON.stringify(message) });
  }
}

describe('Rpc', () => {
  it('matches replies to requests by id, in any order', async () => {
    const s = new FakeSocket();
    const rpc = new Rpc(s);
    const a = rpc.invoke('pit/workspace', 'list', { path: '' });
    const b = rpc.invoke('caret/text-tools', 'upper', 'x');
    expect(s.sent.map((m) => m.params)).toEqual([
      { target: 'pit/workspace', op: 'list', payload: { path: '' } },
      { target: 'caret/text-tools', op: 'upper', payload: 'x' },
    ]);
    s.reply({ jsonrpc: '2.0', id: s.sent[1].id, result: 'X' });
    s.reply({ jsonrpc: '2.0', id: s.sent[0].id, result: { entries: [] } });
    await expect(a).resolves.toEqual({ entries: [] });
    await expect(b).resolves.toBe('X');
  });

  it('turns error responses into RpcError with the kernel error kind', async () => {
    const s = new FakeSocket();
    const rpc = new Rpc(s);
    const p = rpc.invoke('caret/text-tools', 'todos');
    s.reply({ jsonrpc: '2.0', id: s.sent[0].id, error: { code: -32000, message: 'denied: needs fs.read:workspace', data: { code: 'denied', capability: 'fs.read:workspace' } } });
    const e = (await p.catch((x: unknown) => x)) as RpcError;
    expect(e).toBeInstanceOf(RpcError);
    expect(e.code).toBe(-32000);
    expect(e.kind).toBe('denied');
    expect(e.message).toContain('fs.read:workspace');
  });

  it('delivers events that arrive before the subscribe reply', async () => {
    const s = new FakeSocket();
    const rpc = new Rpc(s);
    const got: unknown[] = [];
    const sub = rpc.subscribe({ topic: 'terminal', terminal: 3 }, (e) => got.push(e));
    s.reply({ jsonrpc: '2.0', method: 'event', params: { subscription: 9, topic: 'terminal', event: { kind: 'output', data: '$ ' } } });
    s.reply({ jsonrpc: '2.0', id: s.sent[0].id, result: 9 });
    const stop = await sub;
    s.reply({ jsonrpc: '2.0', method: 'event', params: { subscription: 9, topic: 'terminal', event: { kind: 'exit', code: 0 } } });
    s.reply({ jsonrpc: '2.0', method: 'event', params: { subscription: 10, topic: 'settings', event: {} } });
    expect(got).toEqual([{ kind: 'output', data: '$ ' }, { kind: 'exit', code: 0 }]);
    stop();
    expect(s.sent[1]).toMatchObject({ method: 'unsubscribe', params: { subscription: 9 } });
  });

  it('fails pending and later calls once the connection closes', async () => {
    const s = new FakeSocket();
    const rpc = new Rpc(s);
    const reasons: string[] = [];
    rpc.onClose((r) => reasons.push(r));
    const p = rpc.invoke('pit/settings', 'get');
    s.onclose?.({ code: 1006, reason: '' });
    await expect(p).rejects.toThrow('code 1006');
    await expect(rpc.invoke('pit/settings', 'get')).rejects.toThrow('code 1006');
    expect(reasons).toHaveLength(1);
  });

  it('ignores frames that are not JSON or not ours', () => {
    const s = new FakeSocket();
    new Rpc(s);
    expect(() => s.onmessage?.({ data: 'not json' })).not.toThrow();
    expect(() => s.reply({ jsonrpc: '2.0', id: 999, result: 1 })).not.toThrow();
  });
});

describe('rpcUrl', () => {
  const storage = () => {
    const m = new Map<string, string>();
    return { getItem: (k: string) => m.get(k) ?? null, setItem: (k: string, v: string) => void m.set(k, v) };
  };
  it('takes the token from the URL and keeps it for reloads', () => {
    const s = storage();
    expect(rpcUrl({ search: '?token=abc%2B1', host: '127.0.0.1:7457', protocol: 'http:' }, s)).toBe('ws://127.0.0.1:7457/rpc?token=abc%2B1');
    expect(rpcUrl({ search: '', host: '127.0.0.1:7457', protocol: 'http:' }, s)).toBe('ws://127.0.0.1:7457/rpc?token=abc%2B1');
  });
  it('uses wss under https and gives up without a token', () => {
    expect(rpcUrl({ search: '?token=t', host: 'h', protocol: 'https:' }, storage())).toBe('wss://h/rpc?token=t');
    expect(rpcUrl({ search: '', host: 'h', protocol: 'http:' }, storage())).toBeNull();
  });
});
