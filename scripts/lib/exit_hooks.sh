# Sourced by the service scripts in scripts/services/: a list of exit hooks run by one EXIT
# trap, so every service can register its own cleanup (noisecorr_on_exit FUNCTION) without
# replacing another's; an EXIT trap set before this file is sourced still runs, last.
# Hooks run in reverse order of registration; a failing hook does not stop the others.
if ! declare -F noisecorr_on_exit >/dev/null; then
    NOISECORR_EXIT_HOOKS=()
    noisecorr_on_exit() { NOISECORR_EXIT_HOOKS+=("$1"); }
    _noisecorr_run_exit_hooks() {
        local i
        for ((i = ${#NOISECORR_EXIT_HOOKS[@]} - 1; i >= 0; i--)); do
            "${NOISECORR_EXIT_HOOKS[i]}" || true
        done
        eval "${_noisecorr_prev_exit_trap:-}"
    }
    _noisecorr_keep_exit_trap() {
        # `trap -p EXIT` prints: trap -- 'COMMAND' EXIT; keep COMMAND (the function's own $3)
        eval "set -- $(trap -p EXIT)"
        _noisecorr_prev_exit_trap="${3:-}"
    }
    _noisecorr_keep_exit_trap
    trap _noisecorr_run_exit_hooks EXIT
fi
