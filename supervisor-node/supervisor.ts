/**
 * One supervisor: the libp2p node (node-common/p2p.ts), the chain (LevelDB ChainStore + Ledger +
 * mempool), the consensus driver with its LevelDB write-ahead log, and the request/response
 * protocols it serves (status, template, block, proof, submitTx, candidate, tasks, history, batch,
 * consensus catch-up). `startSupervisor` brings it all up; `stop` takes it down in the reverse
 * order (libp2p first, so nothing new arrives; then the driver; then the stores).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ChainStore } from '../node-common/chain-store.ts';
import { defaultNodeEd25519 } from '../node-common/ed25519-node.ts';
import {
  catchUpWithChain,
  DurableTaskHistory,
  finalizedHistoryView,
  HistoryStore,
} from '../node-common/history-store.ts';
import {
  createNode,
  multiaddr,
  type PouwNode,
  peerIdFromString,
  peerIdOfNodeKey,
} from '../node-common/p2p.ts';
import { WalStore } from '../node-common/wal-store.ts';
import { bytesToHex, equalBytes, hexToBytes, utf8 } from '../shared/bytes.ts';
import { type Genesis, parseGenesis } from '../shared/chain/genesis.ts';
import { blockHash, txId } from '../shared/chain/ids.ts';
import type { Ledger } from '../shared/chain/ledger.ts';
import { buildBlockTemplate } from '../shared/chain/template.ts';
import type { OutPoint } from '../shared/chain/types.ts';
import {
  type AsyncConsensusVerifier,
  asyncVerifier,
  Commit,
  type ConsensusMessage,
  DEFAULT_ROUND_WINDOW,
  signingKeys,
  type TendermintParams,
  validateMessageAsync,
} from '../shared/consensus/index.ts';
import * as bls from '../shared/crypto/bls.ts';
import type { Ed25519 } from '../shared/crypto/ed25519.ts';
import type { KeyShare } from '../shared/crypto/threshold-bls.ts';
import { NetError } from '../shared/errors.ts';
import {
  BatchRequest,
  BatchResponse,
  BlockRequest,
  CandidateRequest,
  CandidateResponse,
  ConsensusRequest,
  ConsensusResponse,
  FinalizedBlock,
  HistoryRequest,
  HistoryResponse,
  MAX_CATCHUP_COMMITS,
  MAX_HISTORY_ID_PAGE,
  MAX_HISTORY_IDS,
  MAX_PROOF_ENTRIES,
  NodeRole,
  type ProofEntry,
  ProofRequest,
  ProofResponse,
  StatusRequest,
  StatusResponse,
  SubmitTxRequest,
  SubmitTxResponse,
  TasksRequest,
  TasksResponse,
  TemplateRequest,
  TemplateResponse,
} from '../shared/net/messages.ts';
import { MAX_RESPONSE_BYTES, topics } from '../shared/net/protocols.ts';
import { batchIndices } from '../shared/pouw/dataset.ts';
import { encodedSize, type HistoryIds } from '../shared/pouw/history.ts';
import { ItRes } from '../shared/pouw/itres.ts';
import { batchesPerEpoch } from '../shared/pouw/task.ts';
import { ChainApp } from './chain.ts';
import type { SupervisorConfig } from './config.ts';
import { ConsensusDriver, type DriverLog } from './driver.ts';
import { fetchByIds, GapFiller, type GapQuery } from './gap-filler.ts';
import { type JoinableTask, JoinService } from './join.ts';
import {
  type HistorySource,
  joinedTaskHistory,
  readTaskFile,
  type SupervisedTask,
  superviseTask,
  type TaskFile,
  taskHistorySource,
} from './tasks.ts';
import { type CandidateVerifier, fastVerifier, realVerifier } from './verifier.ts';

/** A supervisor's secrets as scripts/devnet.ts writes them (supervisors/supervisor-<i>.json). */
export interface SupervisorKeys {
  /** Committee index (0-based) = BLS share index − 1. */
  member: number;
  nodeKeySeed: Uint8Array;
  share: KeyShare;
}

function keyError(field: string, message: string): NetError {
  return new NetError('NET_BAD_CONFIG', `key file ${field}: ${message}`, 'REJECT', {
    field: `keyFile.${field}`,
  });
}

/** Reads a devnet key file and checks it against the genesis committee. */
export async function loadSupervisorKeys(
  file: string,
  genesis: Genesis,
  ed: Ed25519,
): Promise<SupervisorKeys> {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw keyError('(file)', `cannot read ${file}: ${(e as Error).message}`);
  }
  const hex = (k: string, len: number): Uint8Array => {
    const v = json[k];
    if (typeof v !== 'string' || !new RegExp(`^[0-9a-f]{${2 * len}}$`).test(v))
      throw keyError(k, `must be ${len} bytes of hex`);
    return hexToBytes(v);
  };
  const index = json['index'];
  const n = genesis.committee.members.length;
  if (typeof index !== 'number' || !Number.isInteger(index) || index < 1 || index > n)
    throw keyError('index', `must be a member index in [1, ${n}]`);
  const nodeKeySeed = hex('nodeKeySeed', 32);
  const share = { index, secretKey: hex('blsSecretShare', 32) };
  const member = genesis.committee.members[index - 1]!;
  if (!equalBytes(await ed.getPublicKey(nodeKeySeed), member.nodeKey))
    throw keyError('nodeKeySeed', `is not the node key of committee member ${index}`);
  if (!equalBytes(bls.getPublicKey(share.secretKey), member.blsPublicShare))
    throw keyError('blsSecretShare', `is not the BLS share of committee member ${index}`);
  return { member: index - 1, nodeKeySeed, share };
}

export interface SupervisorOptions {
  config: SupervisorConfig;
  log?: DriverLog;
  /** Overrides the verifier the config names (tests, benchmarks). */
  verifier?: CandidateVerifier;
  /** Log every consensus input and effect. */
  trace?: boolean;
}

export interface Supervisor {
  readonly node: PouwNode;
  readonly driver: ConsensusDriver;
  readonly app: ChainApp;
  readonly store: ChainStore;
  readonly genesis: Genesis;
  readonly member: number;
  stop(): Promise<void>;
}

export async function startSupervisor(opts: SupervisorOptions): Promise<Supervisor> {
  const { config } = opts;
  const log: DriverLog = opts.log ?? (() => {});
  const ed = await defaultNodeEd25519();
  const genesis = parseGenesis(JSON.parse(readFileSync(config.genesisFile, 'utf8')));
  if (genesis.chainId !== config.chainId)
    throw new NetError('NET_BAD_CONFIG', `config.chainId: genesis is for ${genesis.chainId}`, 'REJECT', {
      field: 'chainId',
    });
  const keys = await loadSupervisorKeys(config.keyFile, genesis, ed);
  const { committee, chainId } = genesis;
  const verifiers = { ed25519Verify: ed.verify.bind(ed), blsVerify: bls.verify };

  const store = await ChainStore.open(join(config.dataDir, 'chain'));
  let wal: WalStore | undefined;
  let historyStore: HistoryStore | undefined;
  let node: PouwNode | undefined;
  try {
    const ledger: Ledger = await store.loadLedger(genesis, verifiers);
    wal = await WalStore.open(join(config.dataDir, 'wal'));
    historyStore = await HistoryStore.open(join(config.dataDir, 'history'));
    const memberPeers = committee.members.map((m) => peerIdOfNodeKey(m.nodeKey).toString());
    node = await createNode({
      nodeKeySeed: keys.nodeKeySeed,
      listen: config.listen,
      directPeers: config.peers.map((p) => ({
        peerId: peerIdFromString(p.peerId),
        addrs: p.addrs.map((a) => multiaddr(a)),
      })),
      log,
    });
    const theNode = node;
    const theWal = wal;
    const consensusTopic = topics.consensus(chainId);
    const blocksTopic = topics.blocks(chainId);
    const messageVerifier = memoizedVerifier(asyncVerifier(ed));
    if (config.tasks.length > 1)
      throw new NetError('NET_BAD_CONFIG', 'config.tasks: one task per supervisor for now', 'REJECT', {
        field: 'tasks',
      });
    const taskFile = config.tasks[0] === undefined ? undefined : readTaskFile(config.tasks[0], chainId);
    // The task's message history: rebuilt from its LevelDB log and brought level with the chain
    // (a decided list lost in a crash after its block comes back from the WAL) before consensus runs.
    const theHistoryStore = historyStore;
    // Decided lists the reopened history could not apply (messages it never recorded): the task's
    // history source fetches their ids from members and applies them.
    let pendingDecided: HistoryIds[] = [];
    const openHistory = async (t: TaskFile, miners: Uint8Array[]) => {
      const h = await DurableTaskHistory.open(theHistoryStore, {
        chainId,
        task: t.definition,
        miners,
        ed25519: ed,
      });
      const caughtUp = await catchUpWithChain(
        h,
        await finalizedHistoryView(store, theWal, ledger.tip.height),
      );
      const { pending, ...report } = caughtUp;
      log('history-restored', { ...h.restored, decided: h.decidedCount, ...report, pending: pending.length });
      pendingDecided = pending;
      return h;
    };
    // A joinable task is supervised from the moment its lead's signed miner set is known (ADR 0012).
    let task: SupervisedTask | undefined =
      taskFile?.miners === undefined
        ? undefined
        : superviseTask(chainId, taskFile, taskFile.miners, ed, await openHistory(taskFile, taskFile.miners));
    const verifier =
      opts.verifier ??
      (config.verifier === 'fast'
        ? fastVerifier
        : realVerifier((id) => (task && equalBytes(id, task.taskId) ? task.verifyContext() : undefined)));
    // One history request to one member (peer messages by id, or a member's iterations by number).
    const askHistory = async (peer: string, query: GapQuery): Promise<ItRes[]> => {
      const body = await theNode.request(
        peerIdFromString(peer),
        'history',
        HistoryRequest.encode(
          query.kind === 'ids'
            ? { ids: query.ids, fromIndex: 0n, count: 0, miner: new Uint8Array(0), fromIteration: 0 }
            : {
                ids: [],
                fromIndex: 0n,
                count: query.count,
                miner: query.miner,
                fromIteration: query.fromIteration,
              },
        ),
        { timeoutMs: 5000 },
      );
      return HistoryResponse.decode(body).messages;
    };
    const otherMembers = () => memberPeers.filter((p) => p !== theNode.peerId.toString());
    const sourceOf = (t: SupervisedTask): HistorySource =>
      taskHistorySource(
        t,
        (idsHex) => fetchByIds(chainId, otherMembers(), askHistory, idsHex),
        log,
        pendingDecided.splice(0),
      );
    const gapFiller = new GapFiller({
      chainId,
      history: () => task?.history,
      peers: otherMembers,
      ask: askHistory,
      log,
    });
    let taskHistory = task === undefined ? undefined : sourceOf(task);
    const history = joinedTaskHistory(chainId, () => taskHistory);

    const app = new ChainApp({
      chainId,
      committee,
      ledger,
      store,
      verifier,
      clock: () => BigInt(Date.now()),
      history,
      fetchCandidate: async (hash) => {
        for (const peer of memberPeers) {
          if (peer === theNode.peerId.toString()) continue;
          try {
            const body = await theNode.request(
              peerIdFromString(peer),
              'candidate',
              CandidateRequest.encode({ candidate: null, blockHash: hash }),
              { timeoutMs: 5000 },
            );
            const c = CandidateResponse.decode(body).candidate;
            if (c && equalBytes(blockHash(chainId, c.block.header), hash)) return c;
          } catch {
            // Try the next member.
          }
        }
        return undefined;
      },
      publishBlock: (block, certificate) => {
        theNode
          .publish(blocksTopic, FinalizedBlock.encode({ block, certificate }))
          .catch((e: unknown) => log('publish-failed', { topic: 'blocks', error: String(e) }));
      },
      log,
    });

    const params: TendermintParams = {
      chainId,
      n: committee.members.length,
      self: keys.member,
      timeouts: config.timeouts,
      roundWindow: DEFAULT_ROUND_WINDOW,
    };
    const validationContext = { chainId, committee };
    const driver = new ConsensusDriver({
      params,
      keys: signingKeys(ed, keys.nodeKeySeed, keys.share),
      wal,
      app,
      gossipMs: config.gossipMs,
      trace: opts.trace ?? false,
      log,
      network: {
        publish: (bytes) => {
          theNode
            .publish(consensusTopic, bytes)
            .catch((e: unknown) => log('publish-failed', { topic: 'consensus', error: String(e) }));
        },
        fetchCommits: async (peer, fromHeight) => {
          const body = await theNode.request(
            peerIdFromString(peer),
            'consensus',
            ConsensusRequest.encode({ fromHeight, count: MAX_CATCHUP_COMMITS }),
            { timeoutMs: 5000 },
          );
          return ConsensusResponse.decode(body).commits;
        },
        verifyCommit: async (commit) => {
          await validateMessageAsync({ kind: 'commit', commit }, validationContext, messageVerifier);
        },
      },
    });

    // Consensus gossip: only committee members originate it; every message is checked statelessly
    // (decode, structure, membership, Ed25519 and BLS partial) before the driver sees it.
    const memberSet = new Set(memberPeers);
    node.subscribe(
      consensusTopic,
      async (data, from): Promise<ConsensusMessage> => {
        if (!memberSet.has(from.toString()))
          throw new NetError('NET_BAD_REQUEST', 'consensus gossip from a non-member', 'REJECT');
        return validateMessageAsync(data, validationContext, messageVerifier);
      },
      (message, from) => driver.receive(message, from.toString()),
    );

    // Volunteers join the task through its lead (join.ts); the task is supervised once the set is known.
    const joins = taskFile?.joinable
      ? await JoinService.start({
          node: theNode,
          chainId,
          committee,
          self: keys.member,
          nodeKeySeed: keys.nodeKeySeed,
          ed,
          dir: join(config.dataDir, 'joins'),
          tasks: () => [taskFile.joinable!],
          onMinerSet: (_taskId, miners) => {
            openHistory(taskFile, miners).then(
              (h) => {
                task = superviseTask(chainId, taskFile, miners, ed, h);
                taskHistory = sourceOf(task);
              },
              (e: unknown) => log('history-open-failed', { error: String(e) }),
            );
          },
          log,
        })
      : undefined;

    // The task's IT_RES: audited and recorded by the history on arrival; REJECT verdicts count
    // against the relaying peer.
    if (taskFile) {
      node.subscribe(
        topics.itres(chainId, taskFile.taskId),
        async (data) => {
          const msg = ItRes.decode(data);
          const t = task;
          if (t === undefined)
            throw new NetError('NET_UNAVAILABLE', 'the task’s miners are not known here yet', 'IGNORE');
          const r = await t.history.offer(msg);
          if (r.code === 'PARKED') gapFiller.poke();
          if (r.verdict === 'REJECT') throw r.error ?? new NetError('NET_BAD_REQUEST', r.code);
          if (r.verdict === 'IGNORE' && r.code !== 'PARKED')
            throw r.error ?? new NetError('NET_NOT_FOUND', r.code, 'IGNORE');
          return r;
        },
        () => {},
      );
    }

    await serveProtocols(theNode, {
      genesis,
      app,
      ledger,
      store,
      wal: theWal,
      driver,
      member: keys.member,
      history,
      task: () => task,
      joinable: taskFile?.joinable,
    });
    await driver.start();
    // Dial the other members now (gossipsub's direct-peer ticks would, a little later).
    for (const p of config.peers) {
      theNode.libp2p.dial(p.addrs.map((a) => multiaddr(a))).catch(() => {});
    }
    log('supervisor-started', {
      member: keys.member,
      peerId: node.peerId.toString(),
      addrs: node.multiaddrs().map((m) => m.toString()),
      tip: String(ledger.tip.height),
      verifier: verifier.kind,
    });

    let stopped = false;
    return {
      node,
      driver,
      app,
      store,
      genesis,
      member: keys.member,
      async stop() {
        if (stopped) return;
        stopped = true;
        await gapFiller.stop();
        await joins?.stop();
        await theNode.stop();
        await driver.stop();
        await theWal.close();
        await theHistoryStore.close();
        await store.close();
      },
    };
  } catch (e) {
    await node?.stop().catch(() => {});
    await wal?.close().catch(() => {});
    await historyStore?.close().catch(() => {});
    await store.close().catch(() => {});
    throw e;
  }
}

/**
 * Remembers signature verdicts (bounded, oldest forgotten first): commits repeat precommits already
 * checked from gossip, and re-gossip repeats everything; a BLS partial check costs ~25 ms.
 */
function memoizedVerifier(v: AsyncConsensusVerifier, max = 16_384): AsyncConsensusVerifier {
  const seen = new Map<string, boolean>();
  const memo = async (
    kind: string,
    pk: Uint8Array,
    m: Uint8Array,
    sig: Uint8Array,
    check: () => boolean | Promise<boolean>,
  ) => {
    const key = `${kind}${bytesToHex(pk)}${bytesToHex(m)}${bytesToHex(sig)}`;
    let ok = seen.get(key);
    if (ok === undefined) {
      ok = await check();
      if (seen.size >= max) seen.delete(seen.keys().next().value!);
      seen.set(key, ok);
    }
    return ok;
  };
  return {
    ed25519: (pk, m, s) => memo('e', pk, m, s, () => v.ed25519(pk, m, s)),
    blsPartial: (pk, m, s) => memo('b', pk, m, s, () => v.blsPartial(pk, m, s)),
  };
}

interface ServeContext {
  genesis: Genesis;
  app: ChainApp;
  ledger: Ledger;
  store: ChainStore;
  wal: WalStore;
  driver: ConsensusDriver;
  member: number;
  history: HistorySource;
  task: () => SupervisedTask | undefined;
  /** A task volunteers join: listed (with no miners) until its set is signed. */
  joinable: JoinableTask | undefined;
}

function notFound(what: string): NetError {
  return new NetError('NET_NOT_FOUND', what, 'IGNORE');
}

async function serveProtocols(node: PouwNode, c: ServeContext): Promise<void> {
  const { genesis, app, ledger, store } = c;
  const chainId = genesis.chainId;
  const chainIdBytes = utf8(chainId);

  await node.serve('status', async (body) => {
    const req = StatusRequest.decode(body);
    if (req.chainId.length > 0 && !equalBytes(req.chainId, chainIdBytes))
      throw new NetError('NET_BAD_REQUEST', 'another chain', 'REJECT');
    return StatusResponse.encode({
      chainId: chainIdBytes,
      genesisHash: ledger.genesisHash,
      role: NodeRole.supervisor,
      tipHeight: ledger.tip.height,
      tipHash: ledger.tip.hash,
      consensusHeight: c.driver.height,
      consensusRound: c.driver.round,
      committeeSize: genesis.committee.members.length,
      threshold: genesis.committee.threshold,
      groupPublicKey: genesis.committee.groupPublicKey,
      memberIndex: c.member,
    });
  });

  await node.serve('template', async (body) => {
    const req = TemplateRequest.decode(body);
    const template = await buildBlockTemplate(ledger, app.mempool, {
      payout: req.payout,
      time: BigInt(Date.now()),
      taskId: req.taskId,
      hashMsgHist: c.history.decidedRoot(),
      extra: req.extra,
    });
    const tipCertificate =
      ledger.tip.height === 0n ? null : ((await store.getCertificate(ledger.tip.height)) ?? null);
    return TemplateResponse.encode({ template, tipCertificate });
  });

  await node.serve('block', async (body) => {
    const req = BlockRequest.decode(body);
    const block = await store.getBlock(req.hash.length === 32 ? req.hash : req.height);
    if (!block) throw notFound('no such finalized block');
    const certificate = (await store.getCertificate(block.header.height)) ?? null;
    return FinalizedBlock.encode({ block, certificate });
  });

  await node.serve('proof', async (body) => {
    const req = ProofRequest.decode(body);
    const outpoints: OutPoint[] = [...req.outpoints];
    if (req.address.length === 20) {
      const owned = await store.outpointsOf(req.address, MAX_PROOF_ENTRIES);
      outpoints.push(...owned.slice(0, Math.max(0, MAX_PROOF_ENTRIES - outpoints.length)));
    }
    // Proofs are taken from the in-memory ledger in one synchronous pass: all against one tip.
    const tip = ledger.tip;
    const entries: ProofEntry[] = outpoints.slice(0, MAX_PROOF_ENTRIES).map((outpoint) => {
      const p = ledger.proveUtxo(outpoint);
      return { outpoint, out: p.out ?? null, proof: p.proof };
    });
    const certificate = tip.height === 0n ? null : ((await store.getCertificate(tip.height)) ?? null);
    return ProofResponse.encode({ header: tip.header, certificate, entries });
  });

  await node.serve('submitTx', async (body) => {
    const tx = SubmitTxRequest.decode(body);
    await app.mempool.add(tx);
    return SubmitTxResponse.encode({ txId: txId(chainId, tx.body) });
  });

  await node.serve('candidate', async (body) => {
    const req = CandidateRequest.decode(body);
    if (req.candidate) {
      const hash = await app.submitCandidate(req.candidate);
      c.driver.valueAvailable();
      return CandidateResponse.encode({ blockHash: hash, candidate: null });
    }
    if (req.blockHash.length !== 32) throw new NetError('NET_BAD_REQUEST', 'no candidate and no block hash');
    const candidate = app.candidate(req.blockHash);
    if (!candidate) throw notFound(`no candidate ${bytesToHex(req.blockHash)}`);
    return CandidateResponse.encode({ blockHash: req.blockHash, candidate });
  });

  await node.serve('consensus', async (body) => {
    const req = ConsensusRequest.decode(body);
    const count = Math.min(req.count, MAX_CATCHUP_COMMITS);
    const stored = await c.wal.commits(req.fromHeight, count);
    if (stored.length === 0) throw notFound(`no commit at ${req.fromHeight}`);
    return ConsensusResponse.encode({ commits: stored.map((b) => Commit.decode(b)) });
  });

  await node.serve('tasks', async (body) => {
    const req = TasksRequest.decode(body);
    const task = c.task();
    const listed = task ?? (c.joinable && { ...c.joinable, miners: [] as Uint8Array[] });
    const match = listed && (req.taskId.length === 0 || equalBytes(req.taskId, listed.taskId));
    return TasksResponse.encode({
      tasks: match ? [{ taskId: listed.taskId, definition: listed.definition, miners: listed.miners }] : [],
    });
  });

  await node.serve('history', async (body) => {
    const req = HistoryRequest.decode(body);
    const task = c.task();
    if (!task) throw notFound('no task supervised here');
    const h = task.history;
    if (req.miner.length > 0) {
      // A member's iterations by number (gap filling): only what this history recorded.
      const minerHex = bytesToHex(req.miner);
      const found: ItRes[] = [];
      for (let i = 0; i < Math.min(req.count, MAX_HISTORY_IDS); i++) {
        const m = h.byMiner(minerHex, req.fromIteration + i);
        if (m === undefined) break;
        found.push(m);
      }
      return HistoryResponse.encode({
        messages: fitResponse(found),
        ids: [],
        total: BigInt(h.count),
        root: h.historyRoot(),
      });
    }
    const messages = fitResponse(
      req.ids.map((id) => h.get(bytesToHex(id))).filter((m): m is ItRes => m !== undefined),
    );
    const count = Math.min(req.count, MAX_HISTORY_ID_PAGE);
    const from = req.fromIndex > BigInt(h.count) ? h.count : Number(req.fromIndex);
    const ids =
      req.ids.length > 0 || count === 0
        ? []
        : h
            .idsHex()
            .slice(from, from + count)
            .map((x) => hexToBytes(x));
    return HistoryResponse.encode({ messages, ids, total: BigInt(h.count), root: h.historyRoot() });
  });

  await node.serve('batch', async (body) => {
    const req = BatchRequest.decode(body);
    const task = c.task();
    if (!task || !equalBytes(req.taskId, task.taskId)) throw notFound('no such task here');
    const def = task.definition;
    if (req.epoch >= def.epochs || req.batchId >= batchesPerEpoch(def))
      throw new NetError('NET_BAD_REQUEST', 'no such batch in this task');
    const indices = batchIndices(task.taskId, req.epoch, req.batchId, def.trainSize, def.batchSize);
    const stride = task.dataset.featureBytes + 1;
    const examples = new Uint8Array(indices.length * stride);
    indices.forEach((i, row) => {
      examples.set(task.dataset.examples.subarray(i * stride, (i + 1) * stride), row * stride);
    });
    return BatchResponse.encode({
      taskId: task.taskId,
      epoch: req.epoch,
      batchId: req.batchId,
      indices,
      examples,
    });
  });
}

/**
 * The longest prefix of `messages` that fits a response frame (an IT_RES may carry a map of up to
 * a million entries); the asker fetches the rest with another request.
 */
function fitResponse(messages: readonly ItRes[]): ItRes[] {
  const budget = MAX_RESPONSE_BYTES - 64 * 1024;
  let used = 0;
  const out: ItRes[] = [];
  for (const m of messages) {
    used += encodedSize(m);
    if (used > budget) break;
    out.push(m);
  }
  return out;
}
