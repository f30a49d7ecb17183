# shellcheck shell=bash
# Last piece — <tools>/env.sh, what scripts/up.sh, scripts/test.sh and a user's shell source.
# Installs nothing. Every value says what the pieces found, so env.sh tells the truth either way.

ENV_FILE=$TOOLS_DIR/env.sh

# shq VALUE: VALUE in single quotes, readable by `source` and by dotenv-style parsers.
shq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

write_env_file() {
	local tmp=$ENV_FILE.tmp q
	{
		printf '# Written by scripts/bootstrap.sh; source it: . %s\n' "$ENV_FILE"
		printf 'export NNDB_TOOLS_DIR=%s\n' "$(shq "$TOOLS_DIR")"
		printf 'export TF_CLI_CONFIG_FILE=%s\n' "$(shq "$CLI_CONFIG")"
		printf 'export TERRAFORM_BINARY_NAME=%s\n' "$(shq "$TF_NAME")"
		printf 'export NNDB_TF_BINARY=%s\n' "$(shq "$TF_BIN")"
		if [[ -n $TF_PATH_PREPEND ]]; then
			printf 'export NNDB_TF_BIN_DIR=%s\n' "$(shq "$TF_PATH_PREPEND")"
			# shellcheck disable=SC2016 # written for the shell that sources the file
			printf 'case ":$PATH:" in *":$NNDB_TF_BIN_DIR:"*) ;; *) export PATH="$NNDB_TF_BIN_DIR:$PATH" ;; esac\n'
		fi
		printf 'export NNDB_PROVIDER_SOURCE=%s\n' "$(shq "$PROVIDER_SOURCE")"
		printf 'export NNDB_PROVIDER_MIRROR=%s\n' "$(shq "$([[ $PROVIDER_SOURCE == mirror ]] && echo "$MIRROR_DIR")")"
		printf 'export NNDB_PROVIDER_LOCK_FILE=%s\n' "$(shq "$MIRROR_LOCK_FILE")"
		q=
		((${#PROVIDERS_READY[@]})) && q=${PROVIDERS_READY[*]}
		printf 'export NNDB_PROVIDERS_AVAILABLE=%s\n' "$(shq "$q")"
		q=
		((${#PROVIDERS_MISSING[@]})) && q=${PROVIDERS_MISSING[*]}
		printf 'export NNDB_PROVIDERS_MISSING=%s\n' "$(shq "$q")"
		printf 'export NNDB_PROVIDERS_READY=%d\n' "$((${#PROVIDERS_MISSING[@]} == 0 ? 1 : 0))"
		printf 'export NNDB_IMAGE_REGISTRY_REACHABLE=%d\n' "$IMAGE_REGISTRY_REACHABLE"
		printf 'export NNDB_DOCKER_READY=%d\n' "$ENGINE_READY"
		printf 'export NNDB_TEST_IMAGES_READY=%d\n' "$IMAGES_READY"
		printf 'export NNDB_SSH_TARGET_READY=%d\n' "$SSH_TARGET_READY"
		printf 'export CHECKPOINT_DISABLE=1\n'
	} >"$tmp"
	mv "$tmp" "$ENV_FILE"
}
