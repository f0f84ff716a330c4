/**
 * Child process of the message-history durability test (node-common/history-store.node.test.ts).
 * As a module it exports `historyRun`: the smallest task's honest IT_RES from three miners (the
 * same every run) and an arrival order with duplicates. As a script
 * (`node --import tsx tests/durability/history-writer.ts --dir D --input F`) it reopens the history
 * in D (rebuilding it from its log), prints `READY <recorded> <decided>`, then offers the messages
 * of F two or three at a time without waiting in between, as gossip does, and prints `ACK <id>` for
 * each message an offer recorded, once the offer resolved (it is durable). After every fifth
 * recording it adopts its own proposal as decided and prints `DECIDED <count>` once that is
 * durable. After the last message it prints `DONE` and idles until killed.
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { nodeCryptoEd25519 } from '../../node-common/ed25519-node.ts';
import { DurableTaskHistory, HistoryStore } from '../../node-common/history-store.ts';
import { bytesToHex, hexToBytes } from '../../shared/bytes.ts';
import type { TaskHistoryOptions } from '../../shared/pouw/history.ts';
import { SeededStream } from '../../shared/pouw/init.ts';
import { ItRes } from '../../shared/pouw/itres.ts';
import { JsSoftmaxEngine, tinySeparableDataset } from '../../shared/pouw/js-engine.ts';
import { denseSoftmaxTask, float32Bits, TaskDefinition } from '../../shared/pouw/task.ts';
import { type HonestRun, runHonestMiners, splitCommitted } from '../../shared/pouw/verify-fixtures.ts';

export const CHAIN = 'pouw-history-durability';

/** The smallest task's honest run: `miners` miners × `iterations` iterations, deterministic. */
export async function historyRun(miners = 3, iterations = 12): Promise<HonestRun> {
  const split = splitCommitted(CHAIN, tinySeparableDataset(48), 4, 0, new Uint8Array(32).fill(5));
  const task = denseSoftmaxTask(4, 3, {
    initSeed: new Uint8Array(32).fill(9),
    tau: float32Bits(0.05),
    batchSize: 4,
    znbLead: 2,
    segmentLength: 4,
    omegaBPpm: 3_200_000,
    epochs: 4,
    trainSize: split.train.count,
    datasetCommitment: split.commitment,
  });
  const engine = new JsSoftmaxEngine(task);
  return runHonestMiners({
    chainId: CHAIN,
    task,
    train: split.train,
    iterations,
    ed25519: nodeCryptoEd25519,
    miners: Array.from({ length: miners }, (_, i) => ({
      engine: { kind: 'gradient' as const, engine },
      secretKey: new Uint8Array(32).fill(i + 1),
    })),
  });
}

/** The run's messages in production order. */
export function produced(run: HonestRun): ItRes[] {
  const out: ItRes[] = [];
  const iterations = run.steps[0]!.length;
  for (let t = 0; t < iterations; t++) for (const s of run.steps) out.push(s[t]!.msg);
  return out;
}

/** A seeded arrival order: shuffled (many arrive early and park), every fourth message twice. */
export function arrivalOrder(msgs: readonly ItRes[], seed: number): ItRes[] {
  const rng = new SeededStream(new Uint8Array(32).fill(seed));
  const out = [...msgs];
  // Local shuffles only (a window of 4), so the park queues stay short.
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.max(0, i - (rng.nextUint32() % 4));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  for (let i = out.length - 1; i >= 0; i -= 4) out.splice(Math.min(out.length, i + 3), 0, out[i]!);
  return out;
}

export interface WriterInput {
  definition: string;
  miners: string[];
  messages: string[];
}

export function optionsOf(input: WriterInput): TaskHistoryOptions {
  return {
    chainId: CHAIN,
    task: TaskDefinition.decode(hexToBytes(input.definition)),
    miners: input.miners.map((m) => hexToBytes(m)),
    ed25519: nodeCryptoEd25519,
  };
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const dir = arg('--dir');
  const file = arg('--input');
  if (dir === undefined || file === undefined)
    throw new Error('usage: history-writer.ts --dir DIR --input FILE');
  const input = JSON.parse(readFileSync(file, 'utf8')) as WriterInput;
  const store = await HistoryStore.open(dir);
  const h = await DurableTaskHistory.open(store, optionsOf(input));
  // A pipe's stdout is synchronous on Linux: the line is in the pipe when write() returns.
  const say = (line: string): void => {
    process.stdout.write(`${line}\n`);
  };
  say(`READY ${h.count} ${h.decidedCount}`);
  const messages = input.messages.map((m) => ItRes.decode(hexToBytes(m)));
  let recorded = 0;
  for (let i = 0; i < messages.length; ) {
    const group = messages.slice(i, i + 2 + (i % 2));
    i += group.length;
    await Promise.all(
      group.map(async (m) => {
        const r = await h.offer(m);
        for (const o of [r, ...r.released])
          if (o.code === 'ACCEPT') {
            say(`ACK ${o.idHex}`);
            recorded++;
          }
      }),
    );
    if (recorded >= 5) {
      recorded = 0;
      const p = h.proposal();
      if (p.ids.length > 0) {
        h.applyDecided(p);
        await h.flush();
        say(`DECIDED ${h.decidedCount}`);
      }
    }
  }
  say(`DONE ${bytesToHex(h.historyRoot())}`);
  setInterval(() => {}, 1 << 30); // wait to be killed
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: unknown) => {
    process.stderr.write(`history-writer: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  });
}
