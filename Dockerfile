# syntax=docker/dockerfile:1
# The DeML machine image, built for riscv64 by `cartesi build` (see cartesi.toml).
# Debian trixie supplies Python 3.13, numpy 2.2, onnxruntime 1.21 and onnx 1.17 for riscv64
# (see docs/machine.md); only pure-Python eth-* packages come from PyPI.
ARG DEBIAN_IMAGE=debian:trixie-slim
FROM --platform=linux/riscv64 ${DEBIAN_IMAGE}

ARG MACHINE_GUEST_TOOLS_VERSION=0.17.2
ARG MACHINE_GUEST_TOOLS_SHA256=c077573dbcf0cdc146adf14b480bfe454ca63aa4d3e8408c5487f550a5b77a41
ADD --checksum=sha256:${MACHINE_GUEST_TOOLS_SHA256} \
    https://github.com/cartesi/machine-guest-tools/releases/download/v${MACHINE_GUEST_TOOLS_VERSION}/machine-guest-tools_riscv64.deb \
    /tmp/machine-guest-tools_riscv64.deb

# The Debian packages are listed in machine/debian-packages.txt, which `make riscv-check` also
# installs into the riscv64 root it checks the DApp in (docs/machine.md).
COPY machine/debian-packages.txt /tmp/debian-packages.txt
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      /tmp/machine-guest-tools_riscv64.deb $(sed 's/#.*//' /tmp/debian-packages.txt) \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /tmp/machine-guest-tools_riscv64.deb \
      /tmp/debian-packages.txt

WORKDIR /opt/cartesi/dapp
COPY machine/pip-requirements.txt machine/pip-requirements.txt
RUN pip3 install --no-cache-dir --no-deps --break-system-packages -r machine/pip-requirements.txt \
 # eth-hash's pycryptodome backend imports `Crypto`; Debian ships the same code as `Cryptodome`.
 && site=$(python3 -c 'import Cryptodome, os; print(os.path.dirname(os.path.dirname(Cryptodome.__file__)))') \
 && ln -s "$site/Cryptodome" "$site/Crypto" \
 && python3 -c 'from eth_hash.auto import keccak; assert keccak(b"").hex().startswith("c5d246")'

COPY protocol/deml_protocol deml_protocol
COPY dapp dapp

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OMP_NUM_THREADS=1 \
    ROLLUP_HTTP_SERVER_URL="http://127.0.0.1:5004"

ENTRYPOINT ["rollup-init"]
CMD ["python3", "-m", "dapp"]
