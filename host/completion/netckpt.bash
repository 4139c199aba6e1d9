# bash completion for netckpt(1). Commands and options come from netckpt's own help, so they
# stay in step with the command table; domain names come from `netckpt list --all`.

_netckpt_uri_args() {
    local i
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
        -c | --connect) printf '%s\n' -c "${COMP_WORDS[i + 1]}" ;;
        --connect=*) printf '%s\n' "${COMP_WORDS[i]}" ;;
        esac
    done
}

_netckpt_domains() {
    local -a uri
    mapfile -t uri < <(_netckpt_uri_args)
    netckpt "${uri[@]}" list --all 2>/dev/null | awk 'NR > 2 && NF >= 3 { print $2 }'
}

_netckpt() {
    local cur prev words cword
    _init_completion -n = 2>/dev/null || {
        cur=${COMP_WORDS[COMP_CWORD]}
        prev=${COMP_WORDS[COMP_CWORD - 1]}
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
    }

    local globals="-c --connect --json -q --quiet -v --verbose --daemon-socket --no-daemon -h --help -V --version"
    local commands
    commands=$(netckpt help 2>/dev/null | awk '/^Commands:/ { on = 1; next } on && NF == 0 { on = 0 } on { print $1 }')

    # Find the command word, skipping global options and -c's argument.
    local i cmd=""
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
        -c | --connect | --daemon-socket) ((i++)) ;;
        -*) ;;
        *)
            cmd=${words[i]}
            break
            ;;
        esac
    done

    if [[ -z $cmd ]]; then
        case $prev in
        -c | --connect)
            COMPREPLY=($(compgen -W "qemu:///system qemu:///session test:///default" -- "$cur"))
            return
            ;;
        --daemon-socket)
            COMPREPLY=($(compgen -f -- "$cur"))
            return
            ;;
        esac
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "$globals" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        fi
        return
    fi

    case $cmd in
    help)
        COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        return
        ;;
    demo)
        COMPREPLY=($(compgen -W "--keep --help" -- "$cur"))
        return
        ;;
    esac

    # Values of options that take one.
    case $prev in
    --dir)
        compopt -o dirnames 2>/dev/null
        COMPREPLY=($(compgen -d -- "$cur"))
        return
        ;;
    --image)
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -f -- "$cur"))
        return
        ;;
    --domain)
        COMPREPLY=($(compgen -W "$(_netckpt_domains)" -- "$cur"))
        return
        ;;
    --freeze-timeout | --watch)
        return
        ;;
    --replay-limit)
        COMPREPLY=($(compgen -W "256K 1M 4M 16M 64M" -- "$cur"))
        return
        ;;
    esac
    if [[ $cur == --stale=* ]]; then
        COMPREPLY=($(compgen -W "--stale=auto --stale=keep" -- "$cur"))
        return
    fi
    if [[ $cur == --clock=* ]]; then
        COMPREPLY=($(compgen -W "--clock=sync --clock=keep" -- "$cur"))
        return
    fi
    if [[ $cur == --agent-channel=* ]]; then
        COMPREPLY=($(compgen -W "--agent-channel=org.netckpt.agent.0 --agent-channel=org.qemu.guest_agent.0" -- "$cur"))
        return
    fi

    if [[ $cur == -* ]]; then
        local opts
        opts=$(netckpt help "$cmd" 2>/dev/null | grep -o -- '--[a-z][a-z-]*' | sort -u)
        COMPREPLY=($(compgen -W "$opts --help" -- "$cur"))
        return
    fi

    # The positional argument: a domain or a bundle directory.
    case $cmd in
    checkpoint | status | unblock)
        COMPREPLY=($(compgen -W "$(_netckpt_domains)" -- "$cur"))
        ;;
    restore | inspect | verify)
        compopt -o dirnames 2>/dev/null
        COMPREPLY=($(compgen -d -- "$cur"))
        ;;
    esac
}

complete -F _netckpt netckpt
