#!/usr/bin/env bash
# Pull-request check for a repository of podform stacks; works in any CI.
#
#   contrib/ci/podform-pr-check.sh stacks/llm [stacks/other ...]
#
# 1. `podform validate` each stack (needs no Podman): a broken manifest fails the check.
# 2. `podform plan --detailed-exitcode -o json` each stack against the Podman the job can
#    reach (CONTAINER_HOST, e.g. a self-hosted runner on the GPU host): the plan is written to
#    podform-plan-<stack folder>.json for review; exit 2 (changes pending) is the normal
#    outcome of a pull request and passes; exit 1 (an error) fails.
# Set PODFORM_PLAN=0 to validate only (a runner without Podman).
set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: $0 STACK_DIR_OR_FILE..." >&2
    exit 64
fi

status=0
for stack in "$@"; do
    echo "==> podform validate -f $stack"
    podform validate -f "$stack" || status=1
done
[ "$status" -eq 0 ] || exit "$status"

if [ "${PODFORM_PLAN:-1}" != "0" ]; then
    for stack in "$@"; do
        out="podform-plan-$(echo "$stack" | tr '/' '-').json"
        echo "==> podform plan --detailed-exitcode -o json -f $stack > $out"
        code=0
        podform plan --detailed-exitcode -o json -f "$stack" >"$out" || code=$?
        case "$code" in
            0) echo "    no changes" ;;
            2) echo "    changes pending (see $out)" ;;
            *) echo "    plan failed (exit $code)" >&2; status=1 ;;
        esac
    done
fi
exit "$status"
