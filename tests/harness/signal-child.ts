/**
 * Child process for node-common/signals.node.test.ts: says "listening", spends 300 ms "starting",
 * then declares itself ready and exits 0 from its stop function. `--no-gate` installs nothing until
 * ready (the pattern the gate replaces).
 */
import { SignalGate } from '../../node-common/signals.ts';

const gate = process.argv.includes('--no-gate') ? undefined : new SignalGate();
process.stdout.write('listening\n');
await new Promise((r) => setTimeout(r, 300));
const stop = (signal: NodeJS.Signals) => {
  process.stdout.write(`stopping ${signal}\n`);
  process.exit(0);
};
if (gate) gate.ready(stop);
else {
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
process.stdout.write('ready\n');
setTimeout(() => process.exit(3), 10_000);
