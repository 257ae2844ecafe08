/** The node's landing page, in Russian or English by `Accept-Language`. */
import { html } from "hono/html";
import type { Config } from "../config.ts";
import { NODE_VERSION } from "../version.ts";

const TEXT = {
  en: {
    lang: "en",
    title: "Pepeunit Node",
    intro: "This is the federation node of the Pepeunit instance",
    actor: "Instance actor (ActivityPub)",
    nodeinfo: "NodeInfo",
    search: "Search Repos across the federation",
    api: "REST API description (OpenAPI)",
  },
  ru: {
    lang: "ru",
    title: "Pepeunit Node",
    intro: "Это узел федерации инстанса Pepeunit",
    actor: "Актор инстанса (ActivityPub)",
    nodeinfo: "NodeInfo",
    search: "Поиск репозиториев по всей федерации",
    api: "Описание REST API (OpenAPI)",
  },
} as const;

/** Picks Russian when the client ranks it above English, English otherwise. */
export function pickLanguage(acceptLanguage: string | undefined): "ru" | "en" {
  if (!acceptLanguage) return "en";
  const ranked = acceptLanguage
    .split(",")
    .map((part) => {
      const [tag = "", ...params] = part.trim().split(";");
      const q = params.find((param) => param.trim().startsWith("q="));
      return { tag: tag.toLowerCase(), q: q ? Number(q.trim().slice(2)) || 0 : 1 };
    })
    .sort((a, b) => b.q - a.q);
  for (const { tag } of ranked) {
    if (tag.startsWith("ru")) return "ru";
    if (tag.startsWith("en")) return "en";
  }
  return "en";
}

export function renderLandingPage(config: Config, acceptLanguage: string | undefined) {
  const text = TEXT[pickLanguage(acceptLanguage)];
  return html`<!doctype html>
<html lang="${text.lang}">
<head><meta charset="utf-8"><title>${config.nodeName}</title></head>
<body>
<h1>${config.nodeName}</h1>
<p>${text.intro} <code>${config.pepeunitDomain}</code>. ${text.title} ${NODE_VERSION}.</p>
<ul>
<li><a href="/ap/actors/instance">${text.actor}</a></li>
<li><a href="/.well-known/nodeinfo">${text.nodeinfo}</a></li>
<li><a href="/api/v1/search/repos">${text.search}</a></li>
<li><a href="/api/v1/openapi.json">${text.api}</a></li>
</ul>
</body>
</html>`;
}
