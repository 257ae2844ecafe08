/** Stores and logs discrepancies between a provider, `payment_orders` and the ledger. */
import { sql } from "drizzle-orm";
import type { DatabaseLike } from "../../db/client.ts";
import {
  type PaymentMismatchKind,
  type PaymentProviderId,
  paymentMismatches,
} from "../../db/schema/index.ts";
import { getNodeLogger } from "../../logging.ts";
import type { JsonValue } from "../ledger/index.ts";

const logger = getNodeLogger("money", "payments");

export interface MismatchReport {
  provider: PaymentProviderId;
  kind: PaymentMismatchKind;
  /** The order, when it exists; an id that names no order goes into `details`. */
  orderId: string | null;
  providerPaymentId: string;
  details: Record<string, JsonValue>;
}

/**
 * Logs the mismatch at error level and stores it. A finding with the same provider, kind and
 * payment id updates its row and counts one more sighting.
 */
export async function recordMismatch(db: DatabaseLike, report: MismatchReport): Promise<void> {
  const fingerprint = `${report.provider}:${report.kind}:${report.providerPaymentId}`;
  logger.error(
    "Payment mismatch {kind} at {provider}: payment {providerPaymentId}, order {orderId}, {details}",
    { ...report },
  );
  await db
    .insert(paymentMismatches)
    .values({
      provider: report.provider,
      kind: report.kind,
      fingerprint,
      orderId: report.orderId,
      providerPaymentId: report.providerPaymentId,
      details: report.details,
    })
    .onConflictDoUpdate({
      target: paymentMismatches.fingerprint,
      set: {
        details: report.details,
        seenCount: sql`${paymentMismatches.seenCount} + 1`,
        lastSeenAt: sql`now()`,
      },
    });
}
