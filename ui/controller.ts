/**
 * Everything the pages show and do, outside Svelte: keys from the keystore, the network the URL
 * selects, the page's volunteer (and its demo peers), and the verified balance. Components subscribe
 * to `AppState` snapshots (at most every 250 ms: a volunteer reports every iteration, and a tab need
 * not re-render 100 times a second) and call the actions.
 */

import { addressBytesOf } from '../shared/chain/validate-tx.ts';
import { nobleEd25519 } from '../shared/crypto/ed25519.ts';
import { type BalanceView, WalletBalance } from '../web-worker-node/balance.ts';
import { type Keystore, keyFingerprint, type WalletKeys } from '../web-worker-node/keystore.ts';
import type { Unsubscribe } from '../web-worker-node/network.ts';
import {
  type ErrorInfo,
  errorInfo,
  ProgressTracker,
  type VolunteerSnapshot,
} from '../web-worker-node/progress.ts';
import type { WasmFileName } from '../web-worker-node/trainer/backends-browser.ts';
import { Volunteer, type VolunteerWorkerHandle } from '../web-worker-node/volunteer-client.ts';
import { type AppConfig, parseConfig } from './config.ts';
import { type OpenNetwork, openNetwork } from './network-source.ts';

export type NetworkState =
  | { status: 'connecting' }
  | { status: 'ready'; description: string }
  | { status: 'unavailable'; error: ErrorInfo };

export type KeysState =
  | { status: 'loading' }
  | { status: 'ready'; address: string; nodeKey: string }
  | { status: 'error'; error: ErrorInfo };

export interface AppState {
  config: AppConfig | undefined;
  network: NetworkState;
  keys: KeysState;
  volunteer: VolunteerSnapshot;
  /** Start was pressed and Stop was not. */
  contributing: boolean;
  /** A start or stop is under way. */
  busy: boolean;
  /** Demo peers (their own workers in this page) and their iterations. */
  peers: { count: number; iterations: number };
  balance: BalanceView | { status: 'loading' };
  /** The last failed action (start, import), for the page to show. */
  actionError: ErrorInfo | undefined;
}

export interface ControllerDeps {
  search: string;
  openKeystore: () => Promise<Keystore>;
  spawnWorker: () => VolunteerWorkerHandle;
  wasmFiles: () => Partial<Record<WasmFileName, string>>;
  /** Default openNetwork (tests may pass their own). */
  openNetwork?: typeof openNetwork;
}

const NOTIFY_MS = 250;
const BALANCE_DEBOUNCE_MS = 500;

export class AppController {
  private state: AppState = {
    config: undefined,
    network: { status: 'connecting' },
    keys: { status: 'loading' },
    volunteer: new ProgressTracker().snapshot(),
    contributing: false,
    busy: false,
    peers: { count: 0, iterations: 0 },
    balance: { status: 'loading' },
    actionError: undefined,
  };
  private readonly listeners = new Set<(s: AppState) => void>();
  private notifyTimer: ReturnType<typeof setTimeout> | undefined;
  private balanceTimer: ReturnType<typeof setTimeout> | undefined;
  private keystore: Keystore | undefined;
  private wallet: WalletKeys | undefined;
  private net: OpenNetwork | undefined;
  private own: Volunteer | undefined;
  private peers: Volunteer[] = [];
  private balance: WalletBalance | undefined;
  private offFinalized: Unsubscribe | undefined;

  constructor(private readonly deps: ControllerDeps) {}

  get current(): AppState {
    return this.state;
  }

  subscribe(listener: (s: AppState) => void): Unsubscribe {
    this.listeners.add(listener);
    listener(this.state);
    return () => this.listeners.delete(listener);
  }

  /** Reads the URL, opens the keystore and the network; never throws (failures become state). */
  async boot(): Promise<void> {
    try {
      this.set({ config: parseConfig(this.deps.search) });
    } catch (e) {
      this.set({ network: { status: 'unavailable', error: errorInfo(e) } });
    }
    await Promise.all([this.loadKeys(), this.connect()]);
    this.trackBalance();
  }

  /** Start or stop contributing. */
  async toggle(): Promise<void> {
    if (this.state.busy) return;
    this.set({ busy: true, actionError: undefined });
    try {
      if (this.state.contributing) {
        await Promise.all([this.own, ...this.peers].map((v) => v?.stop()));
        this.set({ contributing: false });
      } else {
        if (this.own === undefined) await this.launch();
        this.set({ contributing: true });
        await Promise.all([this.own, ...this.peers].map((v) => v?.start()));
      }
    } catch (e) {
      this.set({ actionError: errorInfo(e), contributing: false });
    } finally {
      this.set({ busy: false });
    }
  }

  /** The wallet's recovery phrase (the Wallet page shows it on request). */
  async revealMnemonic(): Promise<string> {
    if (this.keystore === undefined) throw new Error('the keystore is not open');
    return this.keystore.exportMnemonic();
  }

  /**
   * Restores the wallet from a phrase. Only before contributing starts: the running volunteer's
   * templates pay the address it started with.
   */
  async importMnemonic(phrase: string): Promise<void> {
    if (this.keystore === undefined) throw new Error('the keystore is not open');
    if (this.own !== undefined)
      throw new Error('stop contributing and reload the page before changing wallets');
    this.wallet = await this.keystore.importMnemonic(phrase);
    const node = await this.keystore.nodeIdentity();
    this.set({
      keys: { status: 'ready', address: this.wallet.address, nodeKey: keyFingerprint(node.publicKey) },
      balance: { status: 'loading' },
    });
    this.trackBalance();
  }

  async close(): Promise<void> {
    clearTimeout(this.notifyTimer);
    clearTimeout(this.balanceTimer);
    this.offFinalized?.();
    await Promise.all([this.own, ...this.peers].map((v) => v?.close()));
    this.keystore?.close();
  }

  private async loadKeys(): Promise<void> {
    try {
      this.keystore = await this.deps.openKeystore();
      const [node, wallet] = await Promise.all([this.keystore.nodeIdentity(), this.keystore.wallet()]);
      this.wallet = wallet;
      this.set({
        keys: { status: 'ready', address: wallet.address, nodeKey: keyFingerprint(node.publicKey) },
      });
    } catch (e) {
      this.set({ keys: { status: 'error', error: errorInfo(e) } });
    }
  }

  private async connect(): Promise<void> {
    const config = this.state.config;
    if (config === undefined) return;
    try {
      this.net = await (this.deps.openNetwork ?? openNetwork)(config.source);
      this.set({ network: { status: 'ready', description: this.net.description } });
    } catch (e) {
      this.set({ network: { status: 'unavailable', error: errorInfo(e) } });
    }
  }

  /** Verified balance now and after every finalized block (debounced). */
  private trackBalance(): void {
    const net = this.net;
    const wallet = this.wallet;
    if (net === undefined || wallet === undefined) {
      this.set({
        balance: { status: 'unverified', reason: net === undefined ? 'no network' : 'no wallet' },
      });
      return;
    }
    this.offFinalized?.();
    const conn = net.connect('wallet');
    void net.lightClientStore().then((store) => {
      this.balance = new WalletBalance(conn, net.anchor, store, wallet.addressBytes);
      const sync = () => {
        void this.balance?.sync().then(
          (view) => this.set({ balance: view }),
          (e: unknown) => this.set({ balance: { status: 'unverified', reason: errorInfo(e).message } }),
        );
      };
      this.offFinalized = conn.onFinalized(() => {
        clearTimeout(this.balanceTimer);
        this.balanceTimer = setTimeout(sync, BALANCE_DEBOUNCE_MS);
      });
      sync();
    });
  }

  /** Spawns the page's volunteer (and demo peers), joins the task, loads data, picks the backend. */
  private async launch(): Promise<void> {
    const net = this.net;
    const config = this.state.config;
    if (net === undefined || config === undefined || this.keystore === undefined || this.wallet === undefined)
      throw new Error('the network or the keys are not ready');
    const node = await this.keystore.nodeIdentity();
    const backend = {
      wasmFiles: this.deps.wasmFiles(),
      ...(config.backend === undefined ? {} : { force: config.backend }),
    };
    const peerCount = net.minerSlots - 1;
    this.set({ peers: { count: peerCount, iterations: 0 } });
    const own = Volunteer.launch({
      network: net.connect('you'),
      worker: this.deps.spawnWorker(),
      identity: node,
      payout: this.wallet.addressBytes,
      backend,
      ...(config.dutyCycle === undefined ? {} : { dutyCycle: config.dutyCycle }),
      onEvent: () => {
        this.state.volunteer = this.own?.snapshot() ?? this.state.volunteer;
        this.scheduleNotify();
      },
    });
    // Demo peers: throwaway keys, their own workers, the same task; their rewards go to their keys.
    const peers = Array.from({ length: peerCount }, async (_, i) => {
      const secretKey = crypto.getRandomValues(new Uint8Array(32));
      const publicKey = await nobleEd25519.getPublicKey(secretKey);
      return Volunteer.launch({
        network: net.connect(`demo-peer-${i + 1}`),
        worker: this.deps.spawnWorker(),
        identity: { secretKey, publicKey },
        payout: addressBytesOf(publicKey),
        backend,
        ...(config.dutyCycle === undefined ? {} : { dutyCycle: config.dutyCycle }),
        heldOut: { every: 0, examples: 0 },
        onEvent: (e) => {
          if (e.type !== 'iteration') return;
          this.state.peers = {
            count: peerCount,
            iterations: this.peers.reduce((n, p) => n + p.snapshot().iterations, 0),
          };
        },
      });
    });
    const settled = await Promise.allSettled([own, ...peers]);
    const failed = settled.find((r) => r.status === 'rejected');
    const launched = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    if (failed !== undefined) {
      // All or nothing: a half-launched demo would wait for a miner that never comes.
      await Promise.all(launched.map((v) => v.close()));
      throw failed.reason;
    }
    const [mine, ...others] = launched;
    this.own = mine;
    this.peers = others;
    this.state.volunteer = mine!.snapshot();
  }

  private set(patch: Partial<AppState>): void {
    this.state = { ...this.state, ...patch };
    this.notifyNow();
  }

  private scheduleNotify(): void {
    this.notifyTimer ??= setTimeout(() => {
      this.notifyTimer = undefined;
      const v = this.state.volunteer;
      // The task finished or failed under us: the button goes back to its idle form.
      if (this.state.contributing && (v.phase === 'done' || v.phase === 'error'))
        this.state.contributing = false;
      this.notifyNow();
    }, NOTIFY_MS);
  }

  private notifyNow(): void {
    this.state = { ...this.state };
    for (const l of this.listeners) l(this.state);
  }
}
