#!/usr/bin/env bash
# Rebuilds the one migration that is not committed yet from the current schema. Committed
# migrations may already be applied somewhere, so they are restored as they are in HEAD and
# never edited; everything after them becomes one new migration.
set -euo pipefail
cd "$(dirname "$0")/.."
name="${1:-pending}"
git restore --source=HEAD --worktree -- migrations/postgres
git clean -fq -- migrations/postgres
npx drizzle-kit generate --name "$name"
