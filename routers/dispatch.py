"""Dispatch routes (contract: see ../shared/api-contract.md)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["dispatch"])
