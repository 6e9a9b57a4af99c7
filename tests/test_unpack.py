"""Unpacking zip attachments under limits."""

from __future__ import annotations

import io
import zipfile

from config.settings import LimitsSettings
from intake.samples import gbk_zip
from intake.unpack import unpack_zip


def zip_of(members: dict[str, bytes], *, utf8: bool = True) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def codes(result) -> list[str]:  # noqa: ANN001
    return [p.code.value for p in result.problems]


def test_gbk_member_names_without_the_utf8_flag_are_decoded() -> None:
    result = unpack_zip(gbk_zip({"附件/汇总表.xlsx": b"x", "盖章件.pdf": b"y"}), "材料.zip", LimitsSettings())
    assert [m.name for m in result.members] == ["汇总表.xlsx", "盖章件.pdf"]
    assert result.problems == []


def test_utf8_member_names_are_kept() -> None:
    result = unpack_zip(zip_of({"汇总表.xlsx": b"x"}), "a.zip", LimitsSettings())
    assert [m.name for m in result.members] == ["汇总表.xlsx"]


def test_a_zip_bomb_is_refused_by_its_ratio() -> None:
    result = unpack_zip(zip_of({"bomb.xlsx": b"\0" * 5_000_000}), "a.zip", LimitsSettings())
    assert codes(result) == ["unsafe_file"] and result.members == []


def test_total_unpacked_size_is_bounded_by_bytes_actually_read() -> None:
    limits = LimitsSettings(max_unpacked_bytes=1000, max_zip_ratio=10_000)
    result = unpack_zip(zip_of({"a.bin": bytes(range(256)) * 8}), "a.zip", limits)
    assert codes(result) == ["unsafe_file"]


def test_path_tricks_inside_a_zip_are_refused() -> None:
    result = unpack_zip(zip_of({"../../evil.xlsx": b"x", "/abs.pdf": b"y", "ok.pdf": b"z"}), "a.zip", LimitsSettings())
    assert codes(result) == ["unsafe_file", "unsafe_file"]
    assert [m.name for m in result.members] == ["ok.pdf"]


def test_nested_zips_are_unpacked_up_to_the_depth_limit() -> None:
    inner = zip_of({"deep.pdf": b"%PDF-1.4"})
    middle = zip_of({"inner.zip": inner})
    result = unpack_zip(zip_of({"middle.zip": middle}), "outer.zip", LimitsSettings(max_zip_depth=2))
    assert codes(result) == ["unsafe_file"] and result.members == []
    shallow = unpack_zip(middle, "middle.zip", LimitsSettings(max_zip_depth=2))
    assert [m.name for m in shallow.members] == ["deep.pdf"]


def test_too_many_members_stop_the_unpacking() -> None:
    result = unpack_zip(zip_of({f"{i}.pdf": b"x" for i in range(10)}), "a.zip", LimitsSettings(max_zip_members=3))
    assert len(result.members) == 3 and codes(result) == ["unsafe_file"]


def test_a_truncated_zip_is_unreadable_not_a_crash() -> None:
    data = zip_of({"a.pdf": b"x" * 1000})
    assert codes(unpack_zip(data[:50], "a.zip", LimitsSettings())) == ["unreadable_file"]


def test_an_encrypted_member_is_reported() -> None:
    data = bytearray(zip_of({"a.pdf": b"x"}))
    # Set the "encrypted" general-purpose bit in both the local and the central header.
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(signature)
        data[at + offset] |= 0x1
    assert codes(unpack_zip(bytes(data), "a.zip", LimitsSettings())) == ["encrypted_file"]


def test_one_budget_is_shared_by_every_zip_of_a_mail() -> None:
    from intake.unpack import MailBudget

    limits = LimitsSettings(max_zip_members=5)
    budget = MailBudget(limits)
    first = unpack_zip(zip_of({f"{i}.pdf": b"x" for i in range(3)}), "a.zip", limits, budget=budget)
    second = unpack_zip(zip_of({f"{i}.pdf": b"y" for i in range(3)}), "b.zip", limits, budget=budget)
    assert len(first.members) == 3 and codes(first) == []
    assert len(second.members) == 2 and codes(second) == ["unsafe_file"]


def test_members_are_handed_to_the_store_not_kept() -> None:
    kept: dict[str, bytes] = {}

    def store(data: bytes) -> str:
        kept[str(len(kept))] = data
        return str(len(kept) - 1)

    result = unpack_zip(zip_of({"汇总表.xlsx": b"form", "盖章件.pdf": b"scan"}), "a.zip", LimitsSettings(), store=store)
    assert [(m.name, kept[m.digest]) for m in result.members] == [("汇总表.xlsx", b"form"), ("盖章件.pdf", b"scan")]
