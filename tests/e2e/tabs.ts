/**
 * Browser tabs on the served Contribute page, for the end-to-end test, the `npm start` smoke test
 * and bench/network.ts: each tab in its own browser context (its own IndexedDB, so its own node key
 * and wallet), what the page shows read from the DOM, and what Chromium itself says about the tab's
 * WebRTC connections.
 *
 * WebRTC facts come from the browser, not from the page's code: an init script (run before any page
 * script) records every RTCPeerConnection the page creates, with when it was created and when it
 * reached `connected`; `rtcFacts` asks each one for `getStats()`: the selected ICE candidate pair
 * (its candidate types and addresses, bytes carried) and the DTLS certificate fingerprints of both
 * ends. Two tabs are linked DIRECTLY when one tab's local fingerprint is the other's remote one on a
 * connected, succeeded candidate pair without a TURN (`relay`) candidate: the path is between those
 * two browsers, with no TURN server and no libp2p circuit relay in between.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core';

/** Installed in every tab before the page's scripts run. */
function rtcRecorder(): void {
  const w = globalThis as unknown as {
    RTCPeerConnection: typeof RTCPeerConnection;
    __pouwRtc: { pc: RTCPeerConnection; createdAt: number; connectedAt: number | undefined }[];
  };
  const Native = w.RTCPeerConnection;
  w.__pouwRtc = [];
  class Recorded extends Native {
    constructor(config?: RTCConfiguration) {
      super(config);
      const entry = {
        pc: this as RTCPeerConnection,
        createdAt: Date.now(),
        connectedAt: undefined as number | undefined,
      };
      w.__pouwRtc.push(entry);
      this.addEventListener('connectionstatechange', () => {
        if (this.connectionState === 'connected' && entry.connectedAt === undefined)
          entry.connectedAt = Date.now();
      });
    }
  }
  w.RTCPeerConnection = Recorded;
}

export interface Tab {
  name: string;
  context: BrowserContext;
  page: Page;
  errors: string[];
  /** Wall clock (ms) just before the page was requested. */
  openedAt: number;
}

/** A fresh context (own storage) with the RTC recorder, on `url`; resolves once the page has loaded. */
export async function openTab(browser: Browser, name: string, url: string): Promise<Tab> {
  const context = await browser.newContext();
  // tsx compiles this file with esbuild's keepNames, which wraps named inner functions and classes in
  // `__name(…)`: functions passed to the page (init script, evaluate) need that helper there too.
  await context.addInitScript({ content: 'globalThis.__name ??= (f) => f;' });
  await context.addInitScript(rtcRecorder);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const openedAt = Date.now();
  await page.goto(url, { timeout: 60_000 });
  return { name, context, page, errors, openedAt };
}

/** Waits (bounded) until the Contribute button can be pressed, then presses it. */
export async function pressContribute(tab: Tab, timeoutMs = 60_000): Promise<number> {
  await tab.page.waitForFunction(
    () => {
      const b = document.querySelector('button.big') as HTMLButtonElement | null;
      return b !== null && !b.disabled && /Start contributing/.test(b.textContent ?? '');
    },
    undefined,
    { timeout: timeoutMs },
  );
  const at = Date.now();
  await tab.page.locator('button.big').click();
  return at;
}

export interface TabStats {
  iterations: number;
  itresSent: number;
  itresReceived: number;
  blocksFound: number;
  blocksFinalized: number;
  /** Fractions in [0, 1]; undefined before the first value. */
  batchAccuracy: number | undefined;
  heldOutAccuracy: number | undefined;
  /** The verified balance in POUW and the height it was verified at; undefined while unverified. */
  balance: { pouw: number; height: number } | undefined;
  balanceText: string;
  /** The wallet address rewards go to (bech32m). */
  address: string | undefined;
  network: string;
  phase: string;
  /** Error alerts the page shows. */
  alerts: string[];
}

/** What the Contribute page shows now. */
export async function tabStats(tab: Tab): Promise<TabStats> {
  return tab.page.evaluate(() => {
    const stat = (name: string): string => {
      const dd = [...document.querySelectorAll('.stats div')].find(
        (d) => d.querySelector('dt')?.textContent?.trim() === name,
      );
      return dd?.querySelector('dd')?.textContent?.trim() ?? '';
    };
    const num = (name: string) => Number(stat(name).replace(/,/g, '')) || 0;
    const pct = (name: string) => {
      const m = /([\d.]+)\s*%/.exec(stat(name));
      return m ? Number(m[1]) / 100 : undefined;
    };
    const balanceText = stat('Balance');
    const b = /([\d,.]+)\s*POUW\s*\(verified at height (\d+)\)/.exec(balanceText);
    return {
      iterations: num('Iterations'),
      itresSent: num('IT_RES sent'),
      itresReceived: num('IT_RES received'),
      blocksFound: num('Blocks found'),
      blocksFinalized: num('Blocks finalized'),
      batchAccuracy: pct('Batch accuracy'),
      heldOutAccuracy: pct('Held-out accuracy'),
      balance: b ? { pouw: Number(b[1]!.replace(/,/g, '')), height: Number(b[2]) } : undefined,
      balanceText,
      address: document.querySelector('section code[title]')?.getAttribute('title') ?? undefined,
      network: document.querySelector('section p.muted')?.textContent?.trim() ?? '',
      phase: document.querySelector('#phase')?.textContent?.trim() ?? '',
      alerts: [...document.querySelectorAll('[role=alert]')].map((a) => a.textContent?.trim() ?? ''),
    };
  });
}

export interface RtcFact {
  createdAt: number;
  connectedAt: number | undefined;
  state: string;
  localFingerprint: string | undefined;
  remoteFingerprint: string | undefined;
  /** The selected candidate pair, when there is one. */
  pair:
    | {
        state: string;
        local: { type: string; address: string; port: number; protocol: string };
        remote: { type: string; address: string; port: number; protocol: string };
        bytesSent: number;
        bytesReceived: number;
      }
    | undefined;
}

/** Chromium's view of every RTCPeerConnection the tab created. */
export async function rtcFacts(tab: Tab): Promise<RtcFact[]> {
  return tab.page.evaluate(async () => {
    const w = globalThis as unknown as {
      __pouwRtc?: { pc: RTCPeerConnection; createdAt: number; connectedAt: number | undefined }[];
    };
    const out = [];
    for (const e of w.__pouwRtc ?? []) {
      const byId = new Map<string, Record<string, unknown>>();
      for (const s of (await e.pc.getStats()).values() as Iterable<Record<string, unknown>>)
        byId.set(s['id'] as string, s);
      const transport = [...byId.values()].find((s) => s['type'] === 'transport');
      const fingerprint = (id: unknown) =>
        typeof id === 'string' ? (byId.get(id)?.['fingerprint'] as string | undefined) : undefined;
      const pair = transport ? byId.get(transport['selectedCandidatePairId'] as string) : undefined;
      const cand = (id: unknown) => {
        const c = byId.get(id as string) ?? {};
        return {
          type: String(c['candidateType'] ?? ''),
          address: String(c['address'] ?? c['ip'] ?? ''),
          port: Number(c['port'] ?? 0),
          protocol: String(c['protocol'] ?? ''),
        };
      };
      out.push({
        createdAt: e.createdAt,
        connectedAt: e.connectedAt,
        state: e.pc.connectionState,
        localFingerprint: fingerprint(transport?.['localCertificateId']),
        remoteFingerprint: fingerprint(transport?.['remoteCertificateId']),
        pair: pair
          ? {
              state: String(pair['state']),
              local: cand(pair['localCandidateId']),
              remote: cand(pair['remoteCandidateId']),
              bytesSent: Number(pair['bytesSent'] ?? 0),
              bytesReceived: Number(pair['bytesReceived'] ?? 0),
            }
          : undefined,
      });
    }
    return out;
  });
}

export interface DirectLink {
  /** This tab's connection and the other tab's end of the same connection. */
  a: RtcFact;
  b: RtcFact;
}

/**
 * The WebRTC connection between two tabs, if there is one: a connected pair in each whose
 * certificates match crosswise (A's local is B's remote and the reverse).
 */
export function linkBetween(a: readonly RtcFact[], b: readonly RtcFact[]): DirectLink | undefined {
  for (const x of a) {
    if (x.localFingerprint === undefined || x.remoteFingerprint === undefined) continue;
    const y = b.find(
      (f) => f.localFingerprint === x.remoteFingerprint && f.remoteFingerprint === x.localFingerprint,
    );
    if (y !== undefined) return { a: x, b: y };
  }
  return undefined;
}

/**
 * Whether a link is direct: both ends connected over a succeeded candidate pair with no TURN relay
 * on either side (`host`, or `prflx`: the same kind of address learnt from the peer's checks).
 */
export function isDirect(link: DirectLink): boolean {
  return [link.a, link.b].every(
    (f) =>
      f.state === 'connected' &&
      f.pair !== undefined &&
      f.pair.state === 'succeeded' &&
      f.pair.local.type !== 'relay' &&
      f.pair.remote.type !== 'relay',
  );
}
