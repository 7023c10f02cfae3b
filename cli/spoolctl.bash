# bash completion for spoolctl: commands, their options, job ids (from
# `spoolctl list -q`, which reads index.json), pool names (`spoolctl pools -q`)
# and definition names (`spoolctl definitions -q`: submit and run take one
# instead of a file).
# --root and --config given on the line are passed on, so ids come from that spool.
# Task ids (ID:INDEX) are left to be typed: bash splits words at ':', and an
# array's indexes are not listed anywhere cheap.

_spoolctl_options() {
    case "$1" in
        # -p alone: "--par" stays --parallel's.
        submit|run) echo "-p --id --pool --priority --hold --after --array --parallel --max-failed --cpus --memory --gpus --json" ;;
        definitions) echo "--params --runs --quiet --json" ;;
        wait|status|cancel|start|pause|resume|import) echo "--json" ;;
        list) echo "--state --pool --tag --since --owner --quiet --tree --json" ;;
        logs) echo "--attempt --stderr --follow --events --json" ;;
        pools) echo "--quiet --json" ;;
        results) echo "--name --cat --download --json" ;;
        rerun) echo "--failed --pool --priority --hold --json" ;;
        duplicate) echo "-n --count --pool --priority --hold --json" ;;
        export) echo "-o --output --json" ;;
        shutdown) echo "--stop-jobs --wait --json" ;;
        validate) echo "--explain --json" ;;
        serve) echo "--listen --read-only" ;;
    esac
    echo "--root --config --no-color --help"
}

_spoolctl() {
    local cur prev words cword
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    local commands="submit run wait status list logs cancel start pause resume shutdown definitions pools results rerun duplicate export import validate serve help"

    # The command, its first argument (definitions' subcommand), and the spool
    # options given so far.
    local i command="" first="" spool_args=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${COMP_WORDS[i]}" in
            --root|--config)
                spool_args+=("${COMP_WORDS[i]}" "${COMP_WORDS[i+1]}")
                ((i++)) ;;
            -*) ;;
            *) if [[ -z "$command" ]]; then command="${COMP_WORDS[i]}"
               elif [[ -z "$first" ]]; then first="${COMP_WORDS[i]}"; fi ;;
        esac
    done

    case "$prev" in
        --root|--download)
            COMPREPLY=($(compgen -d -- "$cur")); return ;;
        --config|-o|--output)
            COMPREPLY=($(compgen -f -- "$cur")); return ;;
        --pool)
            COMPREPLY=($(compgen -W "$(spoolctl "${spool_args[@]}" pools -q 2>/dev/null)" -- "$cur")); return ;;
        --state)
            COMPREPLY=($(compgen -W "queued running succeeded failed cancelled" -- "$cur")); return ;;
        --listen)
            COMPREPLY=($(compgen -W "127.0.0.1:8642 127.0.0.1:0 [::1]:8642" -- "$cur")); return ;;
        --id|--priority|--tag|--since|--owner|--attempt|-n|--count|--name|--cat|--array|--parallel|--max-failed|-p|--param|--cpus|--memory|--gpus)
            return ;;
    esac

    if [[ -z "$command" ]]; then
        if [[ "$cur" == -* ]]; then
            COMPREPLY=($(compgen -W "--root --config --no-color --help --version" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        fi
        return
    fi
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$(_spoolctl_options "$command")" -- "$cur"))
        return
    fi
    case "$command" in
        submit|run)
            COMPREPLY=($(compgen -f -- "$cur")
                       $(compgen -W "$(spoolctl "${spool_args[@]}" definitions -q 2>/dev/null)" -- "$cur")) ;;
        validate|import)
            COMPREPLY=($(compgen -f -- "$cur")) ;;
        definitions)
            if [[ -z "$first" ]]; then
                COMPREPLY=($(compgen -W "list show history" -- "$cur"))
            elif [[ "$first" == show || "$first" == history ]]; then
                COMPREPLY=($(compgen -W "$(spoolctl "${spool_args[@]}" definitions -q 2>/dev/null)" -- "$cur"))
            fi ;;
        serve) ;;
        pause|resume)
            COMPREPLY=($(compgen -W "$(spoolctl "${spool_args[@]}" pools -q 2>/dev/null)" -- "$cur")) ;;
        help)
            COMPREPLY=($(compgen -W "$commands" -- "$cur")) ;;
        wait|status|logs|cancel|start|results|rerun|duplicate|export)
            COMPREPLY=($(compgen -W "$(spoolctl "${spool_args[@]}" list -q 2>/dev/null)" -- "$cur")) ;;
    esac
}

complete -o filenames -F _spoolctl spoolctl
