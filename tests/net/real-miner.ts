/**
 * An honest PoUW miner over the network, for the real-verifier test and benchmark: the smallest
 * task (one dense softmax layer, 4 features, 3 classes; shared/pouw/js-engine.ts trains and
 * replays it bit-exactly), the shared/pouw Miner, IT_RES published on the task's gossip topic,
 * block templates fetched from the supervisors over the template protocol (refreshed when the
 * finalized tip moves), and every candidate sent to every supervisor over the candidate protocol.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import { createNode, type PouwNode } from '../../node-common/p2p.ts';
import { bytesToHex } from '../../shared/bytes.ts';
import type { Block } from '../../shared/chain/types.ts';
import { nobleEd25519 } from '../../shared/crypto/ed25519.ts';
import { isPouwError } from '../../shared/errors.ts';
import { CandidateRequest, TemplateRequest, TemplateResponse } from '../../shared/net/messages.ts';
import { topics } from '../../shared/net/protocols.ts';
import type { BlockCandidate } from '../../shared/pouw/candidate.ts';
import type { Dataset } from '../../shared/pouw/dataset.ts';
import { SeededStream } from '../../shared/pouw/init.ts';
import { ItRes } from '../../shared/pouw/itres.ts';
import { JsSoftmaxEngine } from '../../shared/pouw/js-engine.ts';
import { Miner } from '../../shared/pouw/miner.ts';
import { denseSoftmaxTask, float32Bits, TaskDefinition, taskId as taskIdOf } from '../../shared/pouw/task.ts';
import { splitCommitted } from '../../shared/pouw/verify-fixtures.ts';
import { addrOf, type Cluster, sleep, statusOf, waitFor } from './cluster.ts';

export interface TinyTask {
  file: string;
  definition: TaskDefinition;
  taskId: Uint8Array;
  train: Dataset;
  minerSeed: Uint8Array;
  minerKey: Uint8Array;
}

/** 64 examples, 4 feature bytes; the label is the argmax of three fixed linear scores. */
function tinyDataset(count = 64): Dataset {
  const s = new SeededStream(new Uint8Array(32).fill(3));
  const examples = new Uint8Array(count * 5);
  for (let i = 0; i < count; i++) {
    const f = [0, 1, 2, 3].map(() => s.nextUint32() & 0xff);
    const scores = [f[0]! - f[1]!, f[1]! - f[2]! + 20, f[2]! + f[3]! - 200];
    examples.set([...f, scores.indexOf(Math.max(...scores))], i * 5);
  }
  return { examples, count, featureBytes: 4 };
}

/** Writes the task file (supervisor-node/tasks.ts format) for one miner; returns what the miner needs. */
export function writeTinyTask(dir: string, chainId: string): TinyTask {
  const split = splitCommitted(chainId, tinyDataset(), 4, 0.25, new Uint8Array(32).fill(5));
  const definition = denseSoftmaxTask(4, 3, {
    initSeed: new Uint8Array(32).fill(9),
    tau: float32Bits(0.05),
    batchSize: 4,
    znbLead: 2,
    segmentLength: 4,
    // a = 12.8 × β (20 bytes) = 256 nonces per iteration: most iterations find a block at the devnet target.
    omegaBPpm: 12_800_000,
    epochs: 2000,
    trainSize: split.train.count,
    datasetCommitment: split.commitment,
  });
  const minerSeed = randomBytes(32);
  const minerKey = ed25519.getPublicKey(minerSeed);
  const file = join(dir, 'task.json');
  writeFileSync(
    file,
    `${JSON.stringify(
      {
        definition: bytesToHex(TaskDefinition.encode(definition)),
        miners: [bytesToHex(minerKey)],
        examples: bytesToHex(split.train.examples),
        count: split.train.count,
        featureBytes: split.train.featureBytes,
        segmentHashes: split.proof.segmentHashes.map((h) => bytesToHex(h)),
        trainRanges: split.proof.trainRanges,
      },
      null,
      2,
    )}\n`,
  );
  return { file, definition, taskId: taskIdOf(chainId, definition), train: split.train, minerSeed, minerKey };
}

export class RealMiner {
  readonly node: PouwNode;
  readonly #cluster: Cluster;
  readonly #task: TinyTask;
  #miner!: Miner;
  #template: Block | undefined;
  #stopped = false;
  #loops: Promise<void>[] = [];
  #submittedHeight = -1n;
  /** The last candidate this miner found (tests forge copies of it). */
  lastCandidate: BlockCandidate | undefined;
  /** While set, candidates are kept in `held` instead of being sent (so a height stays open). */
  holdCandidates = false;
  held: BlockCandidate | undefined;
  iterations = 0;
  submitted = 0;
  errors: Record<string, number> = {};
  /** Height → wall time its first candidate was accepted by a supervisor. */
  readonly submittedAt = new Map<bigint, number>();

  private constructor(node: PouwNode, cluster: Cluster, task: TinyTask) {
    this.node = node;
    this.#cluster = cluster;
    this.#task = task;
  }

  /** Starts once every supervisor subscribes to the task's topic (so none misses an IT_RES). */
  static async start(cluster: Cluster, task: TinyTask, iterationMs = 40): Promise<RealMiner> {
    const node = await createNode({ nodeKeySeed: randomBytes(32), listen: ['/ip4/127.0.0.1/tcp/0'] });
    const m = new RealMiner(node, cluster, task);
    const chainId = cluster.devnet.genesis.chainId;
    const topic = topics.itres(chainId, task.taskId);
    // Every supervisor must receive every IT_RES from the first one on (the history audits them in
    // order): wait until all of them subscribe here, dialing again the ones not seen yet.
    await waitFor(
      async () => {
        const subscribed = new Set(node.pubsub.getSubscribers(topic).map((p) => p.toString()));
        const missing = cluster.members.filter((s) => !subscribed.has(s.peerId));
        await Promise.all(missing.map((s) => node.libp2p.dial(addrOf(s)).catch(() => {})));
        return missing.length === 0;
      },
      60_000,
      'every supervisor subscribed to the task topic',
      250,
    );
    m.#miner = await Miner.create({
      chainId,
      task: task.definition,
      engine: new JsSoftmaxEngine(task.definition),
      dataset: task.train,
      identity: { secretKey: task.minerSeed, publicKey: task.minerKey, ed: nobleEd25519 },
      miners: [task.minerKey],
      clock: () => BigInt(Date.now()),
      template: () => m.#template,
      transport: {
        broadcast: (msg) => {
          node.publish(topic, ItRes.encode(msg)).catch(() => m.#bump('PUBLISH'));
        },
      },
      onCandidate: (c) => m.#submit(c),
    });
    await m.#refreshTemplate();
    m.#loops = [m.#train(iterationMs), m.#watchTip()];
    return m;
  }

  #bump(code: string): void {
    this.errors[code] = (this.errors[code] ?? 0) + 1;
  }

  async #refreshTemplate(): Promise<void> {
    const member = this.#cluster.members[Math.floor(Math.random() * this.#cluster.members.length)]!;
    try {
      const body = await this.node.request(
        addrOf(member),
        'template',
        TemplateRequest.encode({
          payout: new Uint8Array(20).fill(3),
          taskId: this.#task.taskId,
          extra: new Uint8Array(0),
        }),
        { timeoutMs: 3000 },
      );
      this.#template = TemplateResponse.decode(body).template;
    } catch (e) {
      this.#bump(isPouwError(e) ? e.code : 'TEMPLATE');
    }
  }

  async #watchTip(): Promise<void> {
    while (!this.#stopped) {
      await sleep(100);
      try {
        const s = await statusOf(this.node, this.#cluster.members[0]!);
        if (!this.#template || s.tipHeight + 1n !== this.#template.header.height)
          await this.#refreshTemplate();
      } catch (e) {
        this.#bump(isPouwError(e) ? e.code : 'STATUS');
      }
    }
  }

  async #train(iterationMs: number): Promise<void> {
    while (!this.#stopped) {
      const started = Date.now();
      const r = await this.#miner.iterate();
      if (r === undefined) return; // the task's epochs are done
      this.iterations++;
      await sleep(Math.max(0, iterationMs - (Date.now() - started)));
    }
  }

  /** One candidate per height: the first one found on the current template. */
  #submit(c: BlockCandidate): void {
    this.lastCandidate = c;
    if (this.holdCandidates) {
      this.held = c;
      return;
    }
    const height = c.block.header.height;
    if (this.#stopped || height <= this.#submittedHeight) return;
    this.#submittedHeight = height;
    const body = CandidateRequest.encode({ candidate: c, blockHash: new Uint8Array(0) });
    this.submitted++;
    void Promise.allSettled(
      this.#cluster.members.map((m) =>
        this.node.request(addrOf(m), 'candidate', body, { timeoutMs: 10_000 }),
      ),
    ).then((rs) => {
      let ok = false;
      for (const r of rs) {
        if (r.status === 'fulfilled') ok = true;
        else
          this.#bump(
            isPouwError(r.reason) ? String(r.reason.detail['remoteCode'] ?? r.reason.code) : 'ERROR',
          );
      }
      if (ok && !this.submittedAt.has(height)) this.submittedAt.set(height, Date.now());
      if (!ok) this.#submittedHeight = height - 1n; // let a later candidate for this height try again
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.#loops);
    await this.#miner?.drain();
    this.#miner?.close();
    await this.node.stop();
  }
}
