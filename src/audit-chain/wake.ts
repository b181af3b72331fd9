// A process-wide doorbell between the writers of audit events and this process's sealer. It
// carries no data and no transaction: ringing it only says "events were written, seal soon", so a
// node seals its own writes without polling hard. Events written elsewhere (another node, SQL)
// are found by the sealer's periodic look.
const listeners = new Set<(chain: string) => void>();

/** Rings the doorbell for a chain: called by the writers after inserting an event (before their commit). */
export function auditWritten(chain: string): void {
  for (const listener of listeners) listener(chain);
}

/** Subscribes to the doorbell; returns the unsubscribe function. Listeners must be cheap and not throw. */
export function onAuditWritten(listener: (chain: string) => void): () => void {
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
  };
}
