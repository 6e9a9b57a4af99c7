// Ask before every act (forms with data-confirm); "返回上一页" links go back.
document.addEventListener("submit", function (event) {
  var text = event.target.getAttribute("data-confirm");
  if (text && !window.confirm(text)) event.preventDefault();
});
document.addEventListener("click", function (event) {
  if (event.target.hasAttribute && event.target.hasAttribute("data-back") && history.length > 1) {
    event.preventDefault();
    history.back();
  }
});
