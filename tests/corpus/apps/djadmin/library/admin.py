from django.contrib import admin

from library.models import Author, Book


@admin.register(Author)
class AuthorAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "country",
    )
    search_fields = ("name",)
    list_filter = ("country",)


@admin.register(Book)
class BookAdmin(admin.ModelAdmin):
    list_display = (
        "title",
        "author",
        "isbn",
        "published",
        "price",
        "in_stock",
    )
    search_fields = (
        "title",
        "author__name",
    )
    list_filter = (
        "in_stock",
        "published",
        "author__country",
    )
    date_hierarchy = "published"
