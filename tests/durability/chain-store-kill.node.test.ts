/**
 * Durability of node-common/chain-store.ts under SIGKILL. A child process (writer.ts) commits a
 * fixed block sequence and prints `ACK <h>` after each `commitBlock` resolves; the parent kills it
 * with SIGKILL at a seeded random point (right after an ACK, as a batch is handed over, a few ms
 * into a batch, during a burst of pipelined commits, at a random time, during start-up and
 * recovery), reopens the store and checks that the tip is an acknowledged height (or the one batch
 * in flight) and that the state is exactly the in-memory ledger's at that height. Some iterations
 * continue on the store the previous kill left behind.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, assert, describe, it } from '#test';
import { ChainStore } from '../../node-common/chain-store.ts';
import { bytesToHex, hexToBytes } from '../../shared/bytes.ts';
import type { Ledger } from '../../shared/chain/ledger.ts';
import { OutPoint, TxOut } from '../../shared/chain/types.ts';
import {
  buildSequence,
  encodeSequence,
  type SequenceBlock,
  seededRandom,
  sequenceChain,
  trustingVerifiers,
} from './writer.ts';

const BLOCKS = 24;
const ITERATIONS = 12;
const LANES = 2;
/** Most blocks a child may commit before its kill point, to keep each iteration short. */
const MAX_RUN = 6;
const WRITER = join(import.meta.dirname, 'writer.ts');
const ROOT = join(import.meta.dirname, '..', '..');

const tmp = mkdtempSync(join(tmpdir(), 'chain-store-kill-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

type Mode = 'ack' | 'begin' | 'begin-delay' | 'burst' | 'burst-ack' | 'timer' | 'startup';
const MODES: Mode[] = ['ack', 'begin', 'begin-delay', 'burst', 'timer', 'burst-ack', 'startup'];

interface Outcome {
  signal: NodeJS.Signals | null;
  code: number | null;
  lines: string[];
  stderr: string;
}

/** Runs the writer; `arm` sees each stdout line and calls `kill` (now or from a timer) to SIGKILL it. */
function runChild(
  dir: string,
  blocksFile: string,
  burst: boolean,
  arm: (line: string, kill: () => void) => void,
  startDelayMs: number | undefined,
): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const args = [
      '--import',
      'tsx',
      WRITER,
      '--dir',
      dir,
      '--blocks',
      blocksFile,
      ...(burst ? ['--burst'] : []),
    ];
    const child: ChildProcess = spawn(process.execPath, args, {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: string[] = [];
    let stderr = '';
    let buf = '';
    let killed = false;
    const kill = () => {
      if (!killed) {
        killed = true;
        child.kill('SIGKILL');
      }
    };
    const safety = setTimeout(kill, 20_000);
    if (startDelayMs !== undefined) setTimeout(kill, startDelayMs);
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      buf += chunk;
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        lines.push(line);
        if (!killed) {
          if (line === 'DONE') kill();
          else arm(line, kill);
        }
        nl = buf.indexOf('\n');
      }
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', reject);
    // 'close' fires after stdio is drained: every line the child wrote before dying is in `lines`.
    child.on('close', (code, signal) => {
      clearTimeout(safety);
      resolve({ signal, code, lines, stderr });
    });
  });
}

interface Snapshot {
  hash: Uint8Array;
  header: Ledger['tip']['header'];
  stateRoot: Uint8Array;
  supply: Ledger['supply'];
  times: Map<bigint, bigint>;
  /** outpoint key → encoded TxOut. */
  utxos: Map<string, string>;
  /** owner hex → sorted outpoint keys (what the address index must hold). */
  byOwner: Map<string, string[]>;
}

function snapshot(ledger: Ledger): Snapshot {
  const utxos = new Map<string, string>();
  const byOwner = new Map<string, string[]>();
  for (const { key, out } of ledger.unspent()) {
    utxos.set(key, bytesToHex(TxOut.encode(out)));
    const owner = bytesToHex(out.owner);
    const list = byOwner.get(owner);
    if (list === undefined) byOwner.set(owner, [key]);
    else list.push(key);
  }
  for (const list of byOwner.values()) list.sort();
  return {
    hash: ledger.tip.hash,
    header: ledger.tip.header,
    stateRoot: ledger.stateRoot,
    supply: ledger.supply,
    times: ledger.recentTimes,
    utxos,
    byOwner,
  };
}

describe('chain store durability under SIGKILL', () => {
  it(`${ITERATIONS} kills: the reopened store is at an acknowledged height with exactly the expected state`, {
    timeout: 60_000,
  }, async () => {
    const started = performance.now();
    const chain = await sequenceChain();
    // The state at height 0, kept apart: a fork is only valid while its parent does not change.
    const genesisLedger = (await sequenceChain()).ledger;
    const seq: SequenceBlock[] = await buildSequence(chain, BLOCKS);
    const blocksFile = join(tmp, 'blocks.bin');
    writeFileSync(blocksFile, encodeSequence(seq));
    const accounts = chain.accounts;

    /** What the in-memory ledger holds after each prefix of the sequence (index = height). */
    const expected: Snapshot[] = [snapshot(genesisLedger)];
    for (const { diff } of seq) {
      genesisLedger.commit(diff);
      expected.push(snapshot(genesisLedger));
    }

    let unackedDurable = 0;
    // Two independent lanes run side by side (each kill-and-check iteration is mostly waiting on a
    // child), each with its own seeded schedule and its own store directories.
    const lane = async (laneNo: number): Promise<void> => {
      const rand = seededRandom(`chain-store-kill-schedule-v1/${laneNo}`);
      let dir = '';
      let durableTip = -1; // -1: fresh directory
      for (let j = 0; j < ITERATIONS / LANES; j++) {
        const i = laneNo * (ITERATIONS / LANES) + j;
        const mode = MODES[i % MODES.length]!;
        if (durableTip < 0 || durableTip >= BLOCKS - 2 || rand(3) === 0) {
          dir = join(tmp, `store-${i}`);
          durableTip = -1;
        }
        const burst = mode === 'burst' || mode === 'burst-ack';
        let target = 0;
        const arm = (line: string, kill: () => void) => {
          const [word, n] = line.split(' ');
          const h = Number(n);
          if (word === 'READY') {
            target = h + 1 + rand(Math.min(MAX_RUN, BLOCKS - h));
            if (mode === 'timer') setTimeout(kill, rand(900));
            return;
          }
          if (h !== target) return;
          if (mode === 'ack' && word === 'ACK') kill();
          else if (mode === 'begin' && word === 'BEGIN') kill();
          else if (mode === 'begin-delay' && word === 'BEGIN') setTimeout(kill, 1 + rand(20));
          else if (mode === 'burst' && word === 'BEGIN') setTimeout(kill, rand(20));
          else if (mode === 'burst-ack' && word === 'ACK')
            setTimeout(kill, rand(3)); // the next batch is in flight
          else if (mode === 'startup' && word === 'ACK') kill(); // if start-up survived its timer
        };
        const out = await runChild(
          dir,
          blocksFile,
          burst,
          arm,
          mode === 'startup' ? 300 + rand(1500) : undefined,
        );
        const context = `iteration ${i} (${mode}): ${out.lines.join(', ')} ${out.stderr}`;
        assert.equal(out.signal, 'SIGKILL', `child killed by SIGKILL, ${context}`);
        assert.equal(out.code, null, context);

        // The highest height the child acknowledged: an ACK, or READY (genesis / reopened tip).
        let lastAck = Math.max(durableTip, 0);
        for (const line of out.lines) {
          const [word, n] = line.split(' ');
          if (word === 'ACK' || word === 'READY') lastAck = Math.max(lastAck, Number(n));
        }

        const store = await ChainStore.open(dir);
        const ledger = await store.loadLedger(chain.genesis, trustingVerifiers);
        const tip = Number(ledger.tip.height);
        assert.ok(
          tip >= lastAck && tip <= lastAck + 1,
          `tip ${tip} within [${lastAck}, ${lastAck + 1}], ${context}`,
        );
        assert.ok(tip >= Math.max(durableTip, 0), `tip never goes back, ${context}`);
        if (tip === lastAck + 1) unackedDurable++;

        const want = expected[tip]!;
        const got = snapshot(ledger);
        assert.deepEqual(got.hash, want.hash, `tip hash, ${context}`);
        assert.deepEqual(got.header, want.header, 'tip header');
        assert.deepEqual(got.stateRoot, want.stateRoot, 'stateRoot');
        assert.deepEqual(got.supply, want.supply, 'supply');
        assert.deepEqual(got.times, want.times, 'recent times');
        assert.deepEqual(got.utxos, want.utxos, 'UTXO set');
        let indexed = 0;
        for (const a of accounts) {
          const owner = bytesToHex(a.address);
          const index = (await store.outpointsOf(a.address))
            .map((op) => bytesToHex(OutPoint.encode(op)))
            .sort();
          assert.deepEqual(index, want.byOwner.get(owner) ?? [], `address index of account ${a.index}`);
          indexed += index.length;
        }
        assert.equal(indexed, want.utxos.size, 'address index covers exactly the UTXO set');
        for (const key of [...want.utxos.keys()].slice(0, 50)) {
          assert.ok((await store.getUtxo(OutPoint.decode(hexToBytes(key)))) !== undefined, 'utxo record');
        }
        if (tip > 0) {
          assert.deepEqual(
            await store.getCertificate(BigInt(tip)),
            seq[tip - 1]!.certificate,
            'tip certificate',
          );
          assert.deepEqual(await store.getBlock(BigInt(tip)), seq[tip - 1]!.block, 'tip block');
        }
        assert.equal(await store.getBlock(BigInt(tip + 1)), undefined, 'nothing past the tip');
        await store.close();
        durableTip = tip;
      }
    };
    await Promise.all(Array.from({ length: LANES }, (_, l) => lane(l)));
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `chain-store kill test: ${ITERATIONS} kills in ${seconds.toFixed(1)} s; ` +
        `${unackedDurable} left one durable block whose ACK was never printed`,
    );
    assert.ok(seconds < 60, `bounded time (${seconds.toFixed(1)} s)`);
  });
});
