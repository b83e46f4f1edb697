# Sourced by the scripts after scripts/setup.sh: build settings that depend
# on the machine.
#
# .cargo/config.toml builds for x86-64-v3 (AVX2, BMI1/2, FMA, MOVBE, ...;
# Haswell and later). On a CPU without those, the build scripts themselves
# would die with SIGILL: build for x86-64-v2 there (POPCNT still; the FIB's
# lookups lose the BMI instructions).
if [ "$(uname -m)" = x86_64 ]; then
    for flag in avx2 bmi1 bmi2 fma movbe abm f16c; do
        if ! grep -qw "$flag" /proc/cpuinfo; then
            printf 'env: this CPU lacks %s (x86-64-v3): building for x86-64-v2\n' "$flag" >&2
            export RUSTFLAGS="-C target-cpu=x86-64-v2"
            break
        fi
    done
fi
