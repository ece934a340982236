//! The UI's only way to the kernel: a JSON-RPC 2.0 client over one WebSocket to `symphony serve`.
//! Requests are matched to replies by id; `event` notifications are routed to subscribers by
//! subscription id (events that arrive before the `subscribe` reply are held, not dropped).

/** A JSON-RPC error; `data` carries the kernel's typed error (`code`, `message`, `capability`…). */
export class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
    this.name = 'RpcError';
  }

  /** The kernel's error kind (`denied`, `not-found`, `invalid-input`, …) when there is one. */
  get kind(): string | undefined {
    const d = this.data as { code?: unknown } | undefined;
    return typeof d?.code === 'string' ? d.code : undefined;
  }
}

export type EventHandler = (event: unknown, params: Record<string, unknown>) => void;

/** The minimal socket this client needs (a browser WebSocket, or a fake in unit tests). */
export interface Socket {
  send(text: string): void;
  close(): void;
  onmessage: ((e: { data: unknown }) => void) | null;
  onclose: ((e: { code: number; reason: string }) => void) | null;
}

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };

export class Rpc {
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private handlers = new Map<number, EventHandler>();
  /** Events for subscriptions whose reply has not arrived yet. */
  private early = new Map<number, Array<Record<string, unknown>>>();
  private closeListeners: Array<(reason: string) => void> = [];
  private closed: string | null = null;

  constructor(private socket: Socket) {
    socket.onmessage = (e) => this.receive(String(e.data));
    socket.onclose = (e) => this.fail(e.reason || `the connection closed (code ${e.code})`);
  }

  /** Opens `/rpc` on the page's own server with the token. */
  static connect(url: string): Promise<Rpc> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.onopen = () => resolve(new Rpc(ws as unknown as Socket));
      ws.onerror = () => reject(new Error(`cannot connect to ${url.replace(/token=[^&]*/, 'token=…')}`));
    });
  }

  onClose(listener: (reason: string) => void): void {
    this.closeListeners.push(listener);
  }

  call(method: string, params: unknown): Promise<unknown> {
    if (this.closed !== null) return Promise.reject(new RpcError(-32000, this.closed));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
    });
  }

  /** Calls `op` of a target (`pit/<service>` or `caret/<id>`) through the kernel's proxy. */
  invoke<T = unknown>(target: string, op: string, payload?: unknown): Promise<T> {
    return this.call('invoke', { target, op, payload: payload ?? '' }) as Promise<T>;
  }

  /** Subscribes to a topic; resolves to a function that ends the subscription. */
  async subscribe(params: { topic: string; terminal?: number }, handler: EventHandler): Promise<() => void> {
    const id = (await this.call('subscribe', params)) as number;
    this.handlers.set(id, handler);
    for (const p of this.early.get(id) ?? []) handler(p.event, p);
    this.early.delete(id);
    return () => {
      if (this.handlers.delete(id) && this.closed === null) void this.call('unsubscribe', { subscription: id }).catch(() => {});
    };
  }

  close(): void {
    this.socket.close();
  }

  private receive(text: string): void {
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (message.method === 'event') {
      const params = (message.params ?? {}) as Record<string, unknown>;
      const sub = Number(params.subscription);
      const handler = this.handlers.get(sub);
      if (handler) handler(params.event, params);
      else this.early.set(sub, [...(this.early.get(sub) ?? []), params]);
      return;
    }
    const id = typeof message.id === 'number' ? message.id : NaN;
    const waiting = this.pending.get(id);
    if (!waiting) return;
    this.pending.delete(id);
    if (message.error) {
      const e = message.error as { code: number; message: string; data?: unknown };
      waiting.reject(new RpcError(e.code, e.message, e.data));
    } else {
      waiting.resolve(message.result);
    }
  }

  private fail(reason: string): void {
    if (this.closed !== null) return;
    this.closed = reason;
    for (const p of this.pending.values()) p.reject(new RpcError(-32000, reason));
    this.pending.clear();
    this.handlers.clear();
    for (const l of this.closeListeners) l(reason);
  }
}

/** The token from `?token=` (then kept for reloads of this tab), and the `/rpc` URL to use. */
export function rpcUrl(location: { search: string; host: string; protocol: string }, storage: Pick<Storage, 'getItem' | 'setItem'>): string | null {
  const fromUrl = new URLSearchParams(location.search).get('token');
  if (fromUrl) storage.setItem('symphony.token', fromUrl);
  const token = fromUrl ?? storage.getItem('symphony.token');
  if (!token) return null;
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${location.host}/rpc?token=${encodeURIComponent(token)}`;
}
