// How the untrusted services end (the issuer, the DIP service): on SIGTERM or SIGINT, say so, let
// the running service close (it finishes what is in flight), then exit 0 — or 1 when closing fails.

export type StopSignal = 'SIGTERM' | 'SIGINT';

/** Installs the handlers at once, so a supervisor may signal as soon as the service starts. */
export function closeOnSignals(starting: Promise<{ close(): Promise<void> }>, stopping: (signal: StopSignal) => void): void {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      stopping(signal);
      void starting.then((running) => running.close()).then(() => process.exit(0), () => process.exit(1));
    });
  }
}
