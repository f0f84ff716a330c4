/**
 * The local network's default task and its funding (`npm start`, scripts/network.ts).
 *
 * Task: the joinable one-softmax-layer MNIST task of tests/net/volunteer-task.ts (the digits this
 * repository ships, committed under the devnet's chain id, `minerSlots` joins per ADR 0012), with
 * more epochs so a network keeps training for a while. It is written once into `<dir>/task.json`
 * (+ `train.bin`) and reused on every later start: its id is the hash of its definition, and the
 * supervisors keep its signed miner set under that id.
 *
 * Funding: a PAY_FOR_TASK transaction from the faucet's genesis output, escrowing `TASK_ESCROW` for
 * the task (the change goes back to the faucet). Ed25519 signatures are deterministic, so the same
 * devnet and task always give the same transaction and the same escrow outpoint: a restart can ask
 * the supervisors whether that escrow exists and re-submit the transaction if it does not yet.
 * What the escrow does today: it is recorded and locked on chain, nothing spends it yet (rewards
 * come from the coinbase; SETTLE_TASK arrives with the evaluators).
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bytesToHex, hexToBytes } from '../shared/bytes.ts';
import { type Genesis, genesisBlock } from '../shared/chain/genesis.ts';
import { txId } from '../shared/chain/ids.ts';
import { PayForTaskPayload } from '../shared/chain/payloads.ts';
import { LockKind, type OutPoint, type Transaction, TxKind, type TxOut } from '../shared/chain/types.ts';
import { TX_VERSION } from '../shared/chain/validate-tx.ts';
import { decodeAddress } from '../shared/crypto/address.ts';
import { nobleEd25519 } from '../shared/crypto/ed25519.ts';
import { walletFromMnemonic } from '../shared/crypto/mnemonic.ts';
import { TaskDefinition, taskId as taskIdOf } from '../shared/pouw/task.ts';
import { StateTree } from '../shared/state/state-tree.ts';
import { writeJoinableMnistTask } from '../tests/net/volunteer-task.ts';
import { tinyMnistTask } from '../web-worker-node/demo.ts';

/** What the faucet escrows for the default task: 1,000,000 POUW (8 decimals). */
export const TASK_ESCROW = 1_000_000_0000_0000n;
/** The escrow's deadline height (far away: the devnet never settles it yet). */
export const TASK_DEADLINE_HEIGHT = 1_000_000n;
const FEE = 10_000n;
/**
 * Examples per iteration. The tiny task's 50 makes an iteration take ~10 ms in a tab: ~100 IT_RES
 * per second from each tab, more than gossip and the supervisors' history keep up with today
 * (measured: peers received about a third of them, and candidates were refused for history gaps).
 * 500 makes each iteration ten times the work and the message rate a tenth.
 */
export const NETWORK_TASK_BATCH = 500;

export interface NetworkTask {
  file: string;
  taskId: Uint8Array;
  definition: TaskDefinition;
  minerSlots: number;
  /** False when the file was already there (a restart): `minerSlots` and `epochs` come from it. */
  created: boolean;
}

/**
 * `<dir>/task.json` for `chainId`: written with `minerSlots` and `epochs` when missing, read back
 * as it is otherwise (a task never changes under a running network).
 */
export function ensureNetworkTask(
  dir: string,
  chainId: string,
  minerSlots: number,
  epochs: number,
): NetworkTask {
  const file = join(dir, 'task.json');
  if (existsSync(file)) {
    const json = JSON.parse(readFileSync(file, 'utf8')) as { definition: string; minerSlots: number };
    const definition = TaskDefinition.decode(hexToBytes(json.definition));
    return {
      file,
      definition,
      taskId: taskIdOf(chainId, definition),
      minerSlots: json.minerSlots,
      created: false,
    };
  }
  mkdirSync(dir, { recursive: true });
  const t = writeJoinableMnistTask(dir, chainId, minerSlots, (commitment) => ({
    ...tinyMnistTask(commitment),
    batchSize: NETWORK_TASK_BATCH,
    epochs,
  }));
  return { file: t.file, definition: t.definition, taskId: t.taskId, minerSlots, created: true };
}

export interface TaskFunding {
  tx: Transaction;
  /** The faucet's genesis output the transaction spends. */
  input: OutPoint;
  /** The escrow output it creates (index 0). */
  escrow: OutPoint;
}

/** The faucet's PAY_FOR_TASK for `task` (deterministic: the same inputs give the same bytes). */
export async function taskFundingTx(
  genesis: Genesis,
  faucetMnemonic: string,
  task: { taskId: Uint8Array; definition: TaskDefinition; minerSlots: number },
): Promise<TaskFunding> {
  const chainId = genesis.chainId;
  const { primary } = await walletFromMnemonic(faucetMnemonic);
  const owner = decodeAddress(primary.address);
  const index = genesis.allocations.findIndex((a) => a.address === primary.address);
  if (index < 0) throw new Error('the faucet has no genesis allocation');
  const allocation = genesis.allocations[index]!.value;
  const coinbase = genesisBlock(genesis, new StateTree()).transactions[0]!;
  const input = { txId: txId(chainId, coinbase.body), index };
  const escrow: TxOut = {
    value: TASK_ESCROW,
    owner,
    lockKind: LockKind.ESCROW,
    lockUntil: 0n,
    lockTask: task.taskId,
  };
  const change: TxOut = {
    value: allocation - TASK_ESCROW - FEE,
    owner,
    lockKind: LockKind.NONE,
    lockUntil: 0n,
    lockTask: new Uint8Array(32),
  };
  const body = {
    version: TX_VERSION,
    kind: TxKind.PAY_FOR_TASK,
    inputs: [input],
    outputs: [escrow, change],
    payload: PayForTaskPayload.encode({
      taskId: task.taskId,
      datasetCommitment: task.definition.datasetCommitment,
      minerShareBps: 7000,
      supervisorShareBps: 2000,
      evaluatorShareBps: 1000,
      maxMiners: task.minerSlots,
      deadlineHeight: TASK_DEADLINE_HEIGHT,
    }),
  };
  const id = txId(chainId, body);
  const signature = await nobleEd25519.sign(primary.secretKey, id);
  return {
    tx: {
      body,
      witnesses: [{ publicKey: primary.publicKey, signature }],
      committeeSignature: new Uint8Array(0),
    },
    input,
    escrow: { txId: id, index: 0 },
  };
}

export function outpointHex(op: OutPoint): string {
  return `${bytesToHex(op.txId)}:${op.index}`;
}
