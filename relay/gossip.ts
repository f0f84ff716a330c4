/**
 * The relay as a gossip hub: browser tabs that reach only the relay still get their task's IT_RES,
 * blocks and transactions. The relay follows a topic once a peer subscribes to it (task topics are
 * created with tasks, so no list could be configured), up to `gossip.maxTopics`, and only topics of
 * the network's shapes (shared/net/protocols.ts; consensus stays between supervisors). It leaves a
 * topic when no peer is subscribed any more.
 *
 * Every message is checked before it is forwarded: size (above `maxMessageBytes`, at most
 * MAX_GOSSIP_BYTES: REJECT, a strike)
 * and the sender's message and byte rates (over: IGNORE, not forwarded, a strike). Message bodies
 * are for their subscribers to decode; the relay touches no state with them.
 */
import { type GossipSub, TopicValidatorResult } from '@libp2p/gossipsub';
import type { PeerId } from '@libp2p/interface';
import type { DropReason, PeerLimiter } from './limits.ts';
import type { Logger } from './log.ts';

/** `/pouw/<chainId>/task/<taskId hex>/itres/1`, `/pouw/<chainId>/blocks/1`, `/pouw/<chainId>/tx/1`. */
const TOPIC_SHAPE = /^\/pouw\/([a-z0-9][a-z0-9-]{0,31})\/(?:task\/[0-9a-f]{64}\/itres\/1|blocks\/1|tx\/1)$/;

/** Whether the relay forwards `topic`: a network topic shape, of `chainId` when one is configured. */
export function isRelayedTopic(topic: string, chainId: string | null): boolean {
  const m = TOPIC_SHAPE.exec(topic);
  return m !== null && (chainId === null || m[1] === chainId);
}

export interface GossipHubOptions {
  chainId: string | null;
  maxTopics: number;
  /** At most MAX_GOSSIP_BYTES. */
  maxMessageBytes: number;
}

export class GossipHub {
  private readonly followed = new Set<string>();
  private accepted = 0;

  constructor(
    private readonly pubsub: GossipSub,
    private readonly options: GossipHubOptions,
    private readonly limiter: PeerLimiter,
    private readonly drop: (peer: PeerId, reason: DropReason) => void,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.pubsub.addEventListener('subscription-change', (e) => {
      for (const { topic, subscribe } of e.detail.subscriptions) {
        if (subscribe) this.follow(topic);
      }
    });
    // Peers that disconnect leave topics without a subscription-change event: tidy up on heartbeats.
    this.pubsub.addEventListener('gossipsub:heartbeat', () => this.leaveEmptyTopics());
  }

  topicCount(): number {
    return this.followed.size;
  }

  acceptedCount(): number {
    return this.accepted;
  }

  peerCount(): number {
    return this.pubsub.getPeers().length;
  }

  private follow(topic: string): void {
    if (this.followed.has(topic) || !isRelayedTopic(topic, this.options.chainId)) return;
    if (this.followed.size >= this.options.maxTopics) {
      this.log.warn('gossip topic not followed: topic cap reached', {
        topic,
        maxTopics: this.options.maxTopics,
      });
      return;
    }
    this.followed.add(topic);
    this.pubsub.topicValidators.set(topic, (peer, msg) => this.validate(peer, msg.data));
    this.pubsub.subscribe(topic);
    this.log.info('gossip topic followed', { topic, topics: this.followed.size });
  }

  private leaveEmptyTopics(): void {
    for (const topic of this.followed) {
      if (this.pubsub.getSubscribers(topic).length > 0) continue;
      this.pubsub.unsubscribe(topic);
      this.pubsub.topicValidators.delete(topic);
      this.followed.delete(topic);
      this.log.info('gossip topic left', { topic, topics: this.followed.size });
    }
  }

  private validate(peer: PeerId, data: Uint8Array): TopicValidatorResult {
    if (data.byteLength > this.options.maxMessageBytes) {
      this.drop(peer, 'gossip_oversized');
      return TopicValidatorResult.Reject;
    }
    const reason = this.limiter.admitGossip(peer.toString(), data.byteLength);
    if (reason !== undefined) {
      this.drop(peer, reason);
      return TopicValidatorResult.Ignore;
    }
    this.accepted++;
    return TopicValidatorResult.Accept;
  }
}
