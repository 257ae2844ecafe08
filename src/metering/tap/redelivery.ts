/**
 * Recognises QoS 1 redeliveries of messages the tap has already counted.
 *
 * QoS 1 is at least once. When the connection drops after the tap counted a message but before
 * the broker got its PUBACK, the broker sends the message again on the resumed session. The copy
 * has the DUP flag and the same packet id (MQTT 3.1.1 section 4.4, MQTT 5 section 4.4). The tap remembers
 * at which receive position it counted each packet id, and skips a DUP message whose id it
 * counted within the last {@link REDELIVERY_WINDOW} messages.
 *
 * The window is half the packet id space. Brokers that hand out ids in increasing order (Mosquitto,
 * EMQX, aedes) reuse an id only after 65,535 other ids, so a DUP message whose id was counted within
 * the window is the same message. A broker that reuses ids sooner could make the tap skip a first
 * delivery that carries the DUP flag, which only happens after an earlier delivery was lost.
 */

export const REDELIVERY_WINDOW = 32_768;

export class RedeliveryFilter {
  // Receive position (1-based) at which each packet id was last counted; 0 means never.
  #countedAt = new Float64Array(65_536);
  #position = 0;

  /**
   * Returns true when the message is a redelivery of one already counted; otherwise records it
   * and returns false. Messages without a packet id (QoS 0) are never redeliveries.
   */
  isRedelivery(messageId: number | undefined, dup: boolean): boolean {
    if (messageId === undefined) return false;
    const countedAt = this.#countedAt[messageId] ?? 0;
    if (dup && countedAt > 0 && this.#position - countedAt < REDELIVERY_WINDOW) return true;
    this.#position += 1;
    this.#countedAt[messageId] = this.#position;
    return false;
  }

  /** Forgets every id; call when the broker starts a new session, whose ids start afresh. */
  reset(): void {
    this.#countedAt.fill(0);
  }
}
