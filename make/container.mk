# Usage: make image | make image-debug | make compose-up | make compose-down   (container targets; the Makefile includes this file)
#
# Variables (make VAR=value, the environment, or for the image names a .env file):
#   IMAGE       the app image to build and run         (APP_IMAGE in .env; fastapi-app:local)
#   BASE_IMAGE  base of both Dockerfile stages         (the Dockerfile's: python:3.12-slim@sha256:...)
#   STANDINS=1  use the local stand-in images of `make standins` (no registry needed)
#   DOCKER      a docker CLI that builds with BuildKit (found on PATH)
#   COMPOSE     `docker compose` (v2) when installed, else `docker-compose` (v1.29)

.PHONY: image image-debug standins compose-up compose-down compose-clean compose-logs

# The value of VAR in .env, if that file sets it.
env_file_value = $(strip $(shell [ -f .env ] && sed -n 's/^$(1)=//p' .env | tail -n 1))

STANDIN_PREFIX ?= fastapi-app-standin
ifeq ($(STANDINS),1)
BASE_IMAGE ?= $(STANDIN_PREFIX)/python:3.11
POSTGRES_IMAGE ?= $(STANDIN_PREFIX)/postgres:15
REDIS_IMAGE ?= $(STANDIN_PREFIX)/redis:7
export POSTGRES_IMAGE REDIS_IMAGE
endif
IMAGE ?= $(or $(call env_file_value,APP_IMAGE),fastapi-app:local)
BASE_IMAGE ?= $(or $(call env_file_value,BASE_IMAGE),$(shell sed -n 's/^ARG BASE_IMAGE=//p' Dockerfile))
DOCKER ?= $(shell sh tests/container/standins/docker-client.sh)
COMPOSE ?= $(shell if docker compose version >/dev/null 2>&1; then echo "docker compose"; \
	elif command -v docker-compose >/dev/null 2>&1; then echo docker-compose; \
	else echo "docker compose"; fi)
# The Python that reads pip's settings for the build secrets: the venv's if there is one.
HOST_PYTHON = $(if $(wildcard $(BIN)/python),$(BIN)/python,python3)
IMAGE_VERSION = $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)
IMAGE_REVISION = $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
IMAGE_SOURCE = $(shell git config --get remote.origin.url 2>/dev/null)
COMPOSE_RUN = APP_IMAGE=$(IMAGE) BASE_IMAGE=$(BASE_IMAGE) $(COMPOSE)
COMPOSE_WAIT_SECONDS ?= 120

image: ## build the app image (IMAGE, default fastapi-app:local; STANDINS=1: local base image)
image-debug: ## local debugging only: the app on the base's userland (shell, apt): IMAGE-debug
image: BUILD_TARGET = runtime
image: BUILD_TAG = $(IMAGE)
image-debug: BUILD_TARGET = debug
image-debug: BUILD_TAG = $(IMAGE)-debug
image image-debug:
	@secrets="$$($(HOST_PYTHON) tests/container/standins/pip_secrets.py .tools/build-secrets)"; \
	set -x; DOCKER_BUILDKIT=1 $(DOCKER) build $$secrets --target $(BUILD_TARGET) \
		--build-arg BASE_IMAGE=$(BASE_IMAGE) \
		--build-arg APP_VERSION=$(IMAGE_VERSION) \
		--build-arg APP_REVISION=$(IMAGE_REVISION) \
		$(if $(IMAGE_SOURCE),--build-arg SOURCE_URL=$(IMAGE_SOURCE)) \
		-t $(BUILD_TAG) .
	@$(DOCKER) image inspect -f '$(BUILD_TAG): {{.Size}} bytes' $(BUILD_TAG)

standins: ## build (or reuse) the local Debian, Python, PostgreSQL and Redis stand-in images (root)
	bash tests/container/standins/build.sh

compose-up: image ## build the image, start app + PostgreSQL + Redis, wait until the app is healthy
	$(COMPOSE_RUN) up -d --no-build
	@cid="$$($(COMPOSE_RUN) ps -q app)"; deadline=$$((SECONDS + $(COMPOSE_WAIT_SECONDS))); \
	while :; do \
		state="$$(docker inspect -f '{{.State.Health.Status}}' "$$cid" 2>/dev/null || echo missing)"; \
		[ "$$state" = healthy ] && break; \
		if [ "$$SECONDS" -ge "$$deadline" ] || [ "$$state" = unhealthy ] || [ "$$state" = missing ]; then \
			echo "app is $$state after $(COMPOSE_WAIT_SECONDS) s"; $(COMPOSE_RUN) logs --tail 50 app; exit 1; \
		fi; \
		sleep 2; \
	done; \
	echo "app is healthy: http://localhost:$${APP_PORT:-$(or $(call env_file_value,APP_PORT),8000)}/health/ready"

compose-down: ## stop and remove the stack (the database volume stays)
	$(COMPOSE_RUN) down --remove-orphans

compose-clean: ## stop and remove the stack and its database volume
	$(COMPOSE_RUN) down --remove-orphans -v

compose-logs: ## follow the stack's logs
	$(COMPOSE_RUN) logs -f
