"""The machine's userland, checked: a Debian trixie riscv64 root run under qemu-user.

``python -m riscv`` (``make riscv-check``) builds the root from the machine image's package
list (cached outside the repo), runs the unchanged DApp in it against the host-side guest API
server, replays recorded scenarios and compares every output with the same replay on the host.
See docs/machine.md.
"""
