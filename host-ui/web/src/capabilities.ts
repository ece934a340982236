//! What a capability lets a caret do, in words, for the grant prompt and the extensions view
//! (the kernel's syntax: `fs.read:workspace`, `env:HOME`, `caret.call:text-tools/todos`, …).

export type Risk = 'low' | 'medium' | 'high';

export function describeCapability(cap: string): { text: string; risk: Risk } {
  const [kind, ...rest] = cap.split(':');
  const arg = rest.join(':');
  const scope = (s: string) =>
    s === 'workspace' ? 'the whole workspace' : s.startsWith('workspace/') ? `the workspace folder ${s.slice('workspace/'.length)}` : s === 'data' ? 'its own data folder' : s === 'cache' ? 'its own cache folder' : s;
  switch (kind) {
    case 'fs.read':
      return { text: `read files in ${scope(arg)}`, risk: arg.startsWith('workspace') ? 'medium' : 'low' };
    case 'fs.write':
      return { text: `create, change and delete files in ${scope(arg)}`, risk: arg.startsWith('workspace') ? 'high' : 'low' };
    case 'env':
      return { text: arg.endsWith('*') ? `read environment variables starting with ${arg.slice(0, -1)}` : `read the environment variable ${arg}`, risk: 'medium' };
    case 'net.connect':
      return { text: `open network connections to ${arg.replace(/:\*$/, ' (any port)')}`, risk: 'high' };
    case 'net.http':
      return { text: `make HTTP requests to ${arg}`, risk: 'high' };
    case 'process.exec':
      return { text: `run the program ${arg}`, risk: 'high' };
    case 'caret.call': {
      const [caret, op] = arg.split('/');
      return { text: op ? `call ${op} of the caret ${caret}` : `call any op of the caret ${caret}`, risk: 'medium' };
    }
  }
  if (cap === 'ui.theme') return { text: 'restyle the IDE with its theme', risk: 'low' };
  if (cap === 'ui.panel') return { text: 'show panels in the IDE', risk: 'low' };
  if (cap === 'ui.notify') return { text: 'show notifications', risk: 'low' };
  if (cap.startsWith('pit.')) {
    const [, service, op] = cap.split('.');
    return { text: op ? `use ${op} of the Pit's ${service} service` : `use every op of the Pit's ${service} service`, risk: 'medium' };
  }
  return { text: cap, risk: 'medium' };
}
