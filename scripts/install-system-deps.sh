#!/usr/bin/env bash
# Installs the Debian packages the root-only system tests, the Compose validation, the VIP
# benchmark, the Nimbus state tests and the AWS CLI test of the stand-ins need. Idempotent: packages already installed are skipped, and apt is not touched at all
# when nothing is missing. Must run as root (CI runs it as root before `npm run test:system`).
set -euo pipefail

# Command -> package that provides it. `arping` is satisfied by either iputils-arping (preferred,
# supports -D duplicate detection and -U/-A) or Habets' arping package.
# derby-tools, libderby-java, a JDK and sqlite3: the real-Derby / real-sqlite tests of the Nimbus
# head-node state (npm run test:nimbus).
# prometheus: promtool, which lints /metrics and unit-tests the shipped alert rules (test/ops/metrics.test.ts).
# chromium: the dashboard tests in a real headless browser (npm run test:ui, driven by playwright-core).
# etcd-server: a real etcd (/usr/bin/etcd) for the Coordinator contract and the etcd pair tests (npm run test:coordinators).
PACKAGES=(iproute2 iputils-arping iputils-ping keepalived haproxy docker-compose rclone lsyncd curl derby-tools libderby-java openjdk-17-jdk-headless sqlite3 prometheus chromium etcd-server)
# awscli: the AWS CLI test of the Nimbus and Cumulus stand-ins (test/integration/nimbus-aws-cli.test.ts,
# part of `npm test`). An `aws` already on PATH (pip, pyenv, the AWS installer) is used as it is.
if ! command -v aws >/dev/null 2>&1; then
  PACKAGES+=(awscli)
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-deps: must run as root (apt-get install); skipping" >&2
  exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    continue
  fi
  # Habets' arping provides the same command; accept it instead of replacing it.
  if [ "$pkg" = iputils-arping ] && dpkg-query -W -f='${Status}' arping 2>/dev/null | grep -q 'install ok installed'; then
    continue
  fi
  missing+=("$pkg")
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-system-deps: all present (${PACKAGES[*]})"
  exit 0
fi

echo "install-system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends keeps docker-compose from pulling a Docker engine; only `config` validation
# runs here. Services must not start on install (keepalived/haproxy would bind in the root namespace).
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-system-deps: done"
