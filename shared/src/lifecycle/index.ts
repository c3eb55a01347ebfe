/**
 * Idempotent, ordered shutdown. Steps registered later run first (like a stack): a service registers
 * its resources as it opens them, so closing undoes them in reverse. Calling `close()` twice returns
 * the same promise.
 */
export interface Closer {
  add(name: string, step: () => Promise<void> | void): void;
  close(): Promise<void>;
  readonly closed: boolean;
}

export function createCloser(onError?: (name: string, err: unknown) => void): Closer {
  const steps: Array<{ name: string; step: () => Promise<void> | void }> = [];
  let closing: Promise<void> | undefined;
  return {
    add(name, step) {
      steps.push({ name, step });
    },
    get closed() {
      return closing !== undefined;
    },
    close() {
      closing ??= (async () => {
        for (const { name, step } of steps.reverse()) {
          try {
            await step();
          } catch (err) {
            onError?.(name, err);
          }
        }
      })();
      return closing;
    },
  };
}

/** Runs `close` once on SIGINT/SIGTERM and exits with 0, or 1 if closing takes longer than `deadlineMs`. */
export function onSignals(close: () => Promise<void>, deadlineMs: number): void {
  let started = false;
  const handler = (): void => {
    if (started) return;
    started = true;
    const timer = setTimeout(() => process.exit(1), deadlineMs + 2_000);
    timer.unref();
    close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGINT", handler);
  process.once("SIGTERM", handler);
}
