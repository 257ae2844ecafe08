/**
 * Channels of the Pepeunit backend's HTTP routes. Routes are FastAPI path templates as
 * prometheus-fastapi-instrumentator puts them in the `handler` label, e.g.
 * `/pepeunit/api/v1/units/{uuid}`. The `/pepeunit` prefix is optional, because a backend served
 * under a `root_path` reports templates without it.
 */
import type { Channel } from "../../timeseries/types.ts";

export type HttpChannel = Exclude<Channel, "mqtt">;

export const HTTP_CHANNELS: readonly HttpChannel[] = ["graphql", "rest", "telegram", "other"];

/**
 * Returns the channel of a backend route:
 * - `graphql`: `/pepeunit/graphql` (GraphiQL and queries alike);
 * - `telegram`: `/pepeunit/api/v1/bot`, the bot's webhook. In polling mode the bot makes no
 *   HTTP request to the backend, so its updates are not in these counters;
 * - `rest`: every other route under `/pepeunit/api/`;
 * - `other`: the rest, e.g. the status page `/pepeunit`, `/pepeunit/metrics`, docs, and `none`
 *   (requests that matched no route).
 */
export function classifyHandler(handler: string): HttpChannel {
  const route = handler.replace(/^\/pepeunit(?=\/|$)/, "").replace(/\/+$/, "");
  if (route === "/graphql" || route.startsWith("/graphql/")) return "graphql";
  if (/^\/api\/v\d+\/bot$/.test(route)) return "telegram";
  if (route.startsWith("/api/")) return "rest";
  return "other";
}
