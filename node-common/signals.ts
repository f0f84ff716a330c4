/**
 * SIGINT/SIGTERM handling that exists from the first line of a process. Until a listener is
 * installed, Node applies the default action (terminate, exit by signal), and a process that logs
 * "started" before installing its handlers can be killed that way by a supervisor that reacted to
 * the log line (stdout to a pipe is written synchronously on Linux, so the reader can act in that
 * window). The gate listens at once, holds a signal that arrives during start-up, and hands it to
 * the stop function as soon as the process declares itself ready.
 */
export type Stop = (signal: NodeJS.Signals) => void;

export class SignalGate {
  #stop: Stop | undefined;
  #pending: NodeJS.Signals | undefined;

  constructor(signals: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM']) {
    for (const s of signals) process.on(s, () => this.#fire(s));
  }

  /** A signal received before `ready`, if any (start-up may check it and stop early). */
  get pending(): NodeJS.Signals | undefined {
    return this.#pending;
  }

  /** Start-up is done: `stop` handles every signal from now on, and one already received at once. */
  ready(stop: Stop): void {
    this.#stop = stop;
    const held = this.#pending;
    this.#pending = undefined;
    if (held !== undefined) stop(held);
  }

  #fire(signal: NodeJS.Signals): void {
    if (this.#stop !== undefined) this.#stop(signal);
    else this.#pending ??= signal;
  }
}
