#!/bin/sh
# cuda_compile.sh: compiles the CUDA of every model without a GPU, the way CI checks
# the CUDA target. For each models/*.bp and each rule (brainprop, ebp):
#   1. bpc MODEL.bp --rule R -o DIR/NAME-R.cu                 (the emitted source)
#   2. bpc ptx MODEL.bp --rule R -o DIR/NAME-R.ptx --arch compute_90   (through NVRTC)
#   3. ptxas -arch=sm_90 -v DIR/NAME-R.ptx -o DIR/NAME-R.cubin (assembled for H100/H200)
# and the same with --ranks 2 (the program of one of 2 data-parallel ranks, with its
# NCCL collectives: NAME-R-ranks2.*), and prints, per kernel, the registers, stack and spill bytes ptxas reports, so a
# change that makes a kernel spill shows up in review. Spills are reported, not failed.
# Fails (exit 1) when any step fails or a kernel of the .cu is missing from the cubin.
#
# Environment: BPC (default build/bpc), CUDA_HOME (default /usr/local/cuda),
# OUT (keep the files there; default a temporary folder, removed at the end),
# MODELS (default models/*.bp), ARCH (default 90).
# NVRTC's cache goes to a fresh folder, so every run really compiles.
set -u

BPC=${BPC:-build/bpc}
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
PTXAS=$CUDA_HOME/bin/ptxas
ARCH=${ARCH:-90}
MODELS=${MODELS:-$(ls models/*.bp 2>/dev/null)}

die() { echo "cuda_compile: $*" >&2; exit 1; }
[ -x "$BPC" ] || die "no bpc at $BPC (set BPC=path/to/bpc)"
[ -x "$PTXAS" ] || die "no ptxas at $PTXAS: the tests compile every model's CUDA (no GPU needed); install NVIDIA's CUDA toolkit 12 or 13, or set CUDA_HOME to where it is"
[ -n "$MODELS" ] || die "no models/*.bp to compile"

if [ -n "${OUT:-}" ]; then
    DIR=$OUT
    mkdir -p "$DIR" || die "cannot create $DIR"
else
    DIR=$(mktemp -d "${TMPDIR:-/tmp}/bpc-cuda.XXXXXX") || die "cannot create a temporary folder"
    trap 'rm -rf "$DIR"' EXIT INT TERM
fi
XDG_CACHE_HOME=$DIR/cache
export XDG_CACHE_HOME

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

for model in $MODELS; do
    name=$(basename "$model" .bp)
    for variant in brainprop ebp brainprop:2 ebp:2; do
        r=${variant%:*} base=$DIR/$name-${variant%:*} rule=${variant%:*} ranks=
        case $variant in
            *:*) ranks="--ranks ${variant#*:}" base=$base-ranks${variant#*:} rule="$r, --ranks ${variant#*:}" ;;
        esac
        # shellcheck disable=SC2086 # $ranks is empty or two words
        if ! "$BPC" "$model" --rule "$r" $ranks -o "$base.cu" 2>"$base.err"; then
            fail "$model ($rule): bpc -o $base.cu"; sed 's/^/    /' "$base.err"; continue
        fi
        # shellcheck disable=SC2086
        if ! "$BPC" ptx "$model" --rule "$r" $ranks -o "$base.ptx" --arch "compute_$ARCH" 2>"$base.err"; then
            fail "$model ($rule): bpc ptx (NVRTC)"; sed 's/^/    /' "$base.err"; continue
        fi
        if ! "$PTXAS" -arch="sm_$ARCH" -v "$base.ptx" -o "$base.cubin" >"$base.ptxas" 2>&1; then
            fail "$model ($rule): ptxas -arch=sm_$ARCH"; sed 's/^/    /' "$base.ptxas"; continue
        fi
        # ptxas -v, per entry function:
        #   ptxas info    : Compiling entry function 'NAME' for 'sm_90'
        #   ptxas info    : Function properties for NAME
        #       S bytes stack frame, T bytes spill stores, L bytes spill loads
        #   ptxas info    : Used R registers, ...
        awk '
            /Compiling entry function/ { n = $0; sub(/.*function \047/, "", n); sub(/\047.*/, "", n); name = n }
            /bytes stack frame/ { stack = $1; st = $5; ld = $9 }
            /Used [0-9]+ registers/ && name != "" {
                for (i = 1; i <= NF; i++) if ($i == "Used") regs = $(i + 1)
                printf "  %-34s %5d %7d %9d %9d%s\n", name, regs, stack, st, ld, (st + ld > 0 ? "  SPILLS" : "")
                name = ""
            }' "$base.ptxas" | sort -V >"$base.report"
        want=$(grep -c '^extern "C" __global__' "$base.cu")
        got=$(wc -l <"$base.report")
        echo "$model ($rule): $got kernels, PTX $(wc -c <"$base.ptx") bytes, cubin $(wc -c <"$base.cubin") bytes"
        printf "  %-34s %5s %7s %9s %9s\n" kernel regs stack spill-st spill-ld
        cat "$base.report"
        [ "$want" -eq "$got" ] || fail "$model ($rule): $want kernels in the .cu, $got assembled by ptxas"
        [ "$want" -gt 0 ] || fail "$model ($rule): no kernels emitted"
    done
done

if [ "$fails" -gt 0 ]; then
    echo "cuda_compile: $fails step(s) failed"
    exit 1
fi
echo "cuda_compile: all models compiled for sm_$ARCH"
