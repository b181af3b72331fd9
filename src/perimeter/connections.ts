import type { Server, Socket } from 'node:net';
import { sourceKey } from './address.ts';

/** What the connection cap has seen, for metrics and the attack-surface report. */
export interface ConnectionCapStats {
  /** Open connections of a source key (IPv4 address or IPv6 /64). */
  open(key: string): number;
  /** Connections closed on arrival because their source was at the cap, since start. */
  readonly refused: number;
}

/**
 * Caps the open connections per source (IPv4 address, IPv6 /64) on a listening server. A
 * connection over the cap is destroyed as it arrives, before any TLS work is spent on it.
 * Sources `exempt` names (trusted reverse proxies, which carry many clients) are never capped.
 */
export function capConnectionsPerSource(
  server: Server,
  opts: { readonly max: number; readonly exempt?: (ip: string | undefined) => boolean; readonly onRefused?: (key: string) => void },
): ConnectionCapStats {
  const open = new Map<string, number>();
  let refused = 0;
  if (opts.max > 0) {
    // First in line: a refused connection must not reach the TLS layer's own listener.
    server.prependListener('connection', (socket: Socket) => {
      const ip = socket.remoteAddress;
      if (opts.exempt?.(ip)) return;
      const key = sourceKey(ip);
      const n = (open.get(key) ?? 0) + 1;
      if (n > opts.max) {
        refused++;
        opts.onRefused?.(key);
        socket.destroy();
        return;
      }
      open.set(key, n);
      socket.once('close', () => {
        const left = (open.get(key) ?? 1) - 1;
        if (left <= 0) open.delete(key);
        else open.set(key, left);
      });
    });
  }
  return {
    open: (key) => open.get(key) ?? 0,
    get refused() {
      return refused;
    },
  };
}
