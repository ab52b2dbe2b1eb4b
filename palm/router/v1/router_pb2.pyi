from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RouteRequest(_message.Message):
    __slots__ = ("weights",)
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    weights: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, weights: _Optional[_Iterable[float]] = ...) -> None: ...

class Gap(_message.Message):
    __slots__ = ("gap", "weight")
    GAP_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    gap: float
    weight: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, gap: _Optional[float] = ..., weight: _Optional[_Iterable[float]] = ...) -> None: ...

class Certificate(_message.Message):
    __slots__ = ("multiplicative", "additive")
    MULTIPLICATIVE_FIELD_NUMBER: _ClassVar[int]
    ADDITIVE_FIELD_NUMBER: _ClassVar[int]
    multiplicative: Gap
    additive: Gap
    def __init__(self, multiplicative: _Optional[_Union[Gap, _Mapping]] = ..., additive: _Optional[_Union[Gap, _Mapping]] = ...) -> None: ...

class RouteResponse(_message.Message):
    __slots__ = ("member_id", "rewards", "value", "certificate", "portfolio_version", "weights")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    REWARDS_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    PORTFOLIO_VERSION_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    rewards: _containers.RepeatedScalarFieldContainer[float]
    value: float
    certificate: Certificate
    portfolio_version: int
    weights: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, member_id: _Optional[str] = ..., rewards: _Optional[_Iterable[float]] = ..., value: _Optional[float] = ..., certificate: _Optional[_Union[Certificate, _Mapping]] = ..., portfolio_version: _Optional[int] = ..., weights: _Optional[_Iterable[float]] = ...) -> None: ...

class Weights(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class SamplingParams(_message.Message):
    __slots__ = ("max_new_tokens", "temperature", "top_p", "seed")
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    max_new_tokens: int
    temperature: float
    top_p: float
    seed: int
    def __init__(self, max_new_tokens: _Optional[int] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., seed: _Optional[int] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("prompt", "weights", "member_id", "sampling")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    weights: Weights
    member_id: str
    sampling: SamplingParams
    def __init__(self, prompt: _Optional[str] = ..., weights: _Optional[_Union[Weights, _Mapping]] = ..., member_id: _Optional[str] = ..., sampling: _Optional[_Union[SamplingParams, _Mapping]] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("text", "member_id", "portfolio_version", "tokens", "finish_reason")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    PORTFOLIO_VERSION_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    text: str
    member_id: str
    portfolio_version: int
    tokens: int
    finish_reason: str
    def __init__(self, text: _Optional[str] = ..., member_id: _Optional[str] = ..., portfolio_version: _Optional[int] = ..., tokens: _Optional[int] = ..., finish_reason: _Optional[str] = ...) -> None: ...

class GenerateChunk(_message.Message):
    __slots__ = ("text", "member_id", "finish_reason", "portfolio_version", "tokens")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    PORTFOLIO_VERSION_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    text: str
    member_id: str
    finish_reason: str
    portfolio_version: int
    tokens: int
    def __init__(self, text: _Optional[str] = ..., member_id: _Optional[str] = ..., finish_reason: _Optional[str] = ..., portfolio_version: _Optional[int] = ..., tokens: _Optional[int] = ...) -> None: ...

class GetPortfolioRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Member(_message.Message):
    __slots__ = ("id", "weight", "rewards")
    ID_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    REWARDS_FIELD_NUMBER: _ClassVar[int]
    id: str
    weight: _containers.RepeatedScalarFieldContainer[float]
    rewards: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, id: _Optional[str] = ..., weight: _Optional[_Iterable[float]] = ..., rewards: _Optional[_Iterable[float]] = ...) -> None: ...

class Portfolio(_message.Message):
    __slots__ = ("build", "version", "objectives", "members", "certificate", "solver", "epsilon", "delta")
    BUILD_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVES_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    SOLVER_FIELD_NUMBER: _ClassVar[int]
    EPSILON_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    build: str
    version: int
    objectives: _containers.RepeatedScalarFieldContainer[str]
    members: _containers.RepeatedCompositeFieldContainer[Member]
    certificate: Certificate
    solver: str
    epsilon: float
    delta: float
    def __init__(self, build: _Optional[str] = ..., version: _Optional[int] = ..., objectives: _Optional[_Iterable[str]] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ..., certificate: _Optional[_Union[Certificate, _Mapping]] = ..., solver: _Optional[str] = ..., epsilon: _Optional[float] = ..., delta: _Optional[float] = ...) -> None: ...
